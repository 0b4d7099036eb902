"""Token merging on one SD 1.5 U-Net call (batch 2, as CFG runs it): where does it pay? (issue 7)

    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/tome_unet.py --sizes 256 512 --ratios 0.5
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/tome_unet.py --device cuda --dtype fp16 --sizes 512 1024

Random weights in the shipped SD 1.5 shapes. Per picture size: first one self-attention layer of the
first level (320 channels, 8 heads) alone, plain and through the token-merging processor; then the plain
U-Net and the same U-Net with `TokenMerging` at each ratio, called in turn for --rounds rounds (median
seconds), with the largest difference of the predicted noise. This is the U-Net alone; a whole picture
adds the text encoder and VAE, which token merging does not touch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from keypaint.core.speed.tome import TokenMerging, TokenMergingProcessor, _Grid
from keypaint.models.configs import shipped_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="picture sizes in pixels")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    config = UNet2DConditionModel.load_config(shipped_config("sd15") / "unet")
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config).to(device, dtype).eval()
    context = torch.randn(2, 77, 768, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    print(f"device {device} {args.dtype}, threads {torch.get_num_threads()}, {args.rounds} rounds")
    for size in args.sizes:
        layer_times(size, args.ratios, device, dtype, sync)
        x = torch.randn(2, 4, size // 8, size // 8, device=device, dtype=dtype)
        with torch.inference_mode():
            reference = unet(x, 500, context).sample  # also the warm-up
            times: dict[str, list[float]] = {"plain": []}
            diffs: dict[str, float] = {}
            for _ in range(args.rounds):
                for name in ["plain", *(f"{r:g}" for r in args.ratios)]:
                    merging = TokenMerging(unet, float(name)) if name != "plain" else None
                    sync()
                    start = time.perf_counter()
                    out = unet(x, 500, context).sample
                    sync()
                    times.setdefault(name, []).append(time.perf_counter() - start)
                    if merging is not None:
                        diffs[name] = float((out - reference).abs().max())
                        merging.remove()
        plain = statistics.median(times["plain"])
        row = [f"{size} px ({(size // 8) ** 2} tokens): plain {plain:.3f} s"]
        for name in sorted(times.keys() - {"plain"}):
            seconds = statistics.median(times[name])
            speedup, diff = plain / seconds, diffs[name]
            row.append(f"ratio {name}: {seconds:.3f} s, {speedup:.2f}x, max eps diff {diff:.3f}")
        print("; ".join(row), flush=True)


def layer_times(size: int, ratios: list[float], device: torch.device, dtype: torch.dtype, sync) -> None:
    """One first-level self-attention layer (batch 2), plain and merged, in ms (median of 20 calls)."""
    side = size // 8
    attn = Attention(320, heads=8, dim_head=40).to(device, dtype).eval()
    attn.set_processor(AttnProcessor2_0())
    x = torch.randn(2, side * side, 320, device=device, dtype=dtype)
    grid = _Grid(latent=(side, side))

    def ms(processor) -> float:
        times = []
        for _ in range(22):
            sync()
            start = time.perf_counter()
            processor(attn, x)
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times[2:]) * 1e3

    with torch.inference_mode():
        row = [f"{size} px, one self-attention layer: plain {ms(attn.processor):.2f} ms"]
        for ratio in ratios:
            merged = ms(TokenMergingProcessor(AttnProcessor2_0(), grid, ratio, max_downsample=1))
            row.append(f"ratio {ratio:g}: {merged:.2f} ms")
    print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
