"""Where SDXL's time goes, plain diffusers against keypaint's `--fast` (issue 7).

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/sdxl_parts.py       # on a CUDA GPU, about 4 minutes

In one process, random weights in the shipped SDXL shapes, 1024 px, 50 steps, CFG 7.5: the whole call and
the call up to the latents (so the difference is the VAE decode) for both paths, and the VAE decode alone
in fp32, bf16 and fp16 with its largest pixel difference from fp32. Best of two calls each.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch

from keypaint.bench.gpu import WORKS, _copy_with, _pipeline
from keypaint.core.speed import SpeedOptions, accelerate

PROMPT = "a photo of an astronaut riding a horse on mars"


def call(pipe: Any, output_type: str = "np") -> Any:
    generator = [torch.Generator("cpu").manual_seed(0)]
    result = pipe(
        prompt=PROMPT,
        num_inference_steps=50,
        guidance_scale=7.5,
        height=1024,
        width=1024,
        generator=generator,
        output_type=output_type,
    )
    torch.cuda.synchronize()
    return result.images


def best(f: Callable[[], Any], n: int = 2) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return round(min(times), 3)


def main() -> None:
    device = torch.device("cuda")
    plain = _pipeline(WORKS["sdxl"], False, device)
    call(plain)
    print(
        "plain: whole", best(lambda: call(plain)), "s; to latents", best(lambda: call(plain, "latent")), "s"
    )
    latents = call(plain, "latent")
    scale = plain.vae.config.scaling_factor
    reference = None
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        vae = copy.deepcopy(plain.vae).to(dtype)
        with torch.inference_mode():

            def decode(vae: Any = vae, dtype: torch.dtype = dtype) -> torch.Tensor:
                return vae.decode(latents.to(dtype) / scale).sample

            image = decode().float()
            seconds = best(decode, 3)
        pixels = ((image / 2 + 0.5).clamp(0, 1) * 255).round()
        reference = pixels if reference is None else reference
        diff, nan = float((pixels - reference).abs().max()), bool(torch.isnan(image).any())
        print(
            f"VAE decode {name}: {seconds} s, max diff vs fp32 {diff:.0f}, NaN: {nan}",
            flush=True,
        )
        del vae
    base = _copy_with(plain, unet=copy.deepcopy(plain.unet), vae=copy.deepcopy(plain.vae))
    start = time.perf_counter()
    fast = accelerate(base, SpeedOptions(fast=True, cache_dir=None)).pipe
    call(fast)
    call(fast)
    print("fast: warm-up", round(time.perf_counter() - start, 1), "s", flush=True)
    print("fast: whole", best(lambda: call(fast)), "s; to latents", best(lambda: call(fast, "latent")), "s")
    print("plain again: whole", best(lambda: call(plain)), "s")


if __name__ == "__main__":
    main()
