"""Same seed, same picture on every device: paint on the CPU and on a GPU and compare the pixels.

    python benchmarks/seed_devices.py [--model builtin|tiny] [--sampler "Euler a"]

Prints the largest and mean pixel difference (0-255) per sampler between the CPU (fp32) and the GPU
(fp32, and fp16 for reference). Noise is drawn on the CPU from the seed, so fp32 differences come only
from float rounding in the kernels.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from keypaint import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.models.loaded import LoadedModel, ModelKind


def load(model: str, device: str, dtype: torch.dtype) -> LoadedModel:
    if model == "tiny":
        from keypaint.models.tiny import tiny_model

        loaded = tiny_model(ModelKind.SD1)
        loaded.pipe.to(device, dtype)
        return loaded
    from keypaint.builtin import MODEL
    from keypaint.models.loader import load_model

    return load_model(None if model == "builtin" else model, device=device, dtype=dtype, builtin=MODEL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--sampler", action="append", default=None)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    samplers = (
        [Sampler.parse(s) for s in args.sampler]
        if args.sampler
        else [Sampler.DPMPP_2M_KARRAS, Sampler.EULER_A, Sampler.DDIM, Sampler.DPMPP_SDE_KARRAS]
    )
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this check compares a CPU with a GPU")
    painters = {
        "cpu fp32": Painter(load(args.model, "cpu", torch.float32)),
        "cuda fp32": Painter(load(args.model, "cuda", torch.float32)),
        "cuda fp16": Painter(load(args.model, "cuda", torch.float16)),
    }
    print(f"model {args.model}, {args.steps} steps, seed 1234, prompt 'red apple'")
    print(f"{'sampler':<18} {'device':<10} {'max diff':>9} {'mean diff':>10}")
    for sampler in samplers:
        params = GenerationParams(prompt="red apple", seed=1234, steps=args.steps, sampler=sampler)
        pictures = {
            name: np.asarray(p.generate(params)[0].image, dtype=np.int16) for name, p in painters.items()
        }
        reference = pictures.pop("cpu fp32")
        for name, picture in pictures.items():
            diff = np.abs(picture - reference)
            print(f"{sampler.value:<18} {name:<10} {diff.max():>9d} {diff.mean():>10.3f}")


if __name__ == "__main__":
    main()
