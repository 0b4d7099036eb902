"""What do the approximate speed-ups cost the built-in model in keyword fidelity, and what do they gain?

    python benchmarks/lcm_quality.py --data EMOJI                                # score + speed
    python benchmarks/lcm_quality.py --names 8                                   # speed only
    python benchmarks/lcm_quality.py --lora runs/lcm/lcm_lora.safetensors ...    # another LCM-LoRA

The same held-out (label, style) pairs as `keypaint eval` (DATA/heldout, first N), painted through the
Painter with one seed per pair, prompt "LABEL, STYLE style" with keyword expansion (keypaint's defaults):

- base: the shipped model at its defaults (DPM++ 2M Karras, 20 steps, CFG 7);
- base-N (--base-steps N): the same without the LoRA at N steps, a control for the few-step speed-up;
- lcm: the same model with the LoRA at weight 1, diffusers' LCMScheduler, 4 steps, each --guidance scale
  (1 = no CFG pass; the guidance is distilled into the LoRA);
- deep-cache-N and token-merging-R: the defaults with those speed options (a Painter of their own each,
  since they change the model's U-Net in place), also scored by PSNR against the base picture.

Keyword fidelity is the scorer's top-5 retrieval of the asked label among the held-out labels (as
`keypaint eval` ranks them), beside the real pictures' figure. Without --data, names come from the model's
keyword vocabulary and only seconds per picture are measured. On a shared CPU set OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import math

import numpy as np
import torch
from PIL import Image

from keypaint.explain.latent import psnr


def paint(painter, prompts: list[str], seed: int, **params) -> tuple[list[Image.Image], float]:
    """One picture per prompt (seed + i) and the mean seconds per picture (after one warm-up picture)."""
    from keypaint.core.params import GenerationParams

    painter.generate(GenerationParams(prompt=prompts[0], seed=seed, **params))  # loads LoRA, warms caches
    images, start = [], time.perf_counter()
    for i, prompt in enumerate(prompts):
        images.append(painter.generate(GenerationParams(prompt=prompt, seed=seed + i, **params))[0].image)
    return images, (time.perf_counter() - start) / len(prompts)


def grid(rows: list[list[Image.Image]], columns: int, tile: int = 96) -> Image.Image:
    """One row per mode (real pictures first), the first `columns` pairs of each."""
    columns = min(columns, len(rows[0]))
    sheet = Image.new("RGB", (columns * tile, len(rows) * tile), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row[:columns]):
            small = image.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC)
            sheet.paste(small, (c * tile, r * tile))
    return sheet


def run(args: argparse.Namespace) -> dict:
    from keypaint import Painter
    from keypaint.core.params import LoraRef
    from keypaint.core.samplers import Sampler
    from keypaint.core.speed import SpeedOptions
    from keypaint.data.folder import load_folder
    from keypaint.scorer.evaluate import heldout_pairs, real_pictures, score_pictures
    from keypaint.scorer.model import Scorer

    args.out.mkdir(parents=True, exist_ok=True)
    painter = Painter.load(None, device=args.device, dtype="fp32", home=args.out / "home")
    if args.data is not None:
        pairs = heldout_pairs(load_folder(args.data / "heldout", check_images=False), args.names)
        prompts = [pair.prompt for pair in pairs]
    else:
        vocabulary = painter.model.vocabulary
        assert vocabulary is not None, "the built-in model has no keyword vocabulary"
        every = max(1, len(vocabulary) // args.names)
        pairs, prompts = [], sorted(vocabulary.related)[::every][: args.names]
    modes: dict[str, dict] = {"base": {}}
    speeds = {f"deep-cache-{n}": SpeedOptions(deep_cache=n) for n in args.deep_cache}
    speeds |= {f"token-merging-{r:g}": SpeedOptions(token_merging=r) for r in args.token_merging}
    for steps in args.base_steps:  # controls: the base model (no LoRA) with its own sampler at few steps
        modes[f"base-{steps}"] = {"steps": steps}
    for g in args.guidance:
        modes[f"lcm-{args.lcm_steps}-cfg{g:g}"] = {
            "steps": args.lcm_steps, "sampler": Sampler.LCM, "guidance_scale": g,
            "loras": (LoraRef(str(args.lora), 1.0),)}
    results: dict = {"device": torch.cuda.get_device_name() if painter.device.type == "cuda" else "cpu",
                     "threads": torch.get_num_threads(), "pictures": len(prompts), "lora": str(args.lora),
                     "modes": {}}
    pictures: dict[str, list[Image.Image]] = {}
    for name, params in modes.items():
        pictures[name], seconds = paint(painter, prompts, args.seed, **params)
        results["modes"][name] = {"seconds_per_picture": seconds, **{k: str(v) for k, v in params.items()}}
        print(f"{name}: {seconds:.3f} s/picture", flush=True)
    for name, speed in speeds.items():
        sped = Painter.load(None, device=args.device, dtype="fp32", home=args.out / "home", speed=speed)
        pictures[name], seconds = paint(sped, prompts, args.seed)
        results["modes"][name] = {"seconds_per_picture": seconds, "speed": str(speed)}
        print(f"{name}: {seconds:.3f} s/picture", flush=True)
        del sped
    for name, images in pictures.items():
        values = [psnr(a, b) for a, b in zip(images, pictures["base"], strict=True)]
        finite = [v for v in values if math.isfinite(v)]
        results["modes"][name]["psnr_vs_base_db"] = round(float(np.mean(finite)), 2) if finite else "inf"
    if pairs:
        scorer = Scorer.load(None, device=painter.device)
        real = real_pictures(pairs, painter.model.native_size)
        labels = sorted({p.label for p in pairs})
        for name, images in pictures.items():
            scores = score_pictures(scorer, images, real, [p.label for p in pairs], labels)
            results["modes"][name].update(top1=scores["generated"]["top1"], top5=scores["generated"]["top5"],
                                          frechet_distance=scores["frechet_distance"])
            results["real"] = scores["real"]
            print(f"{name}: top-5 {scores['generated']['top5']:.3f} (real {scores['real']['top5']:.3f})")
        grid([real, *pictures.values()], args.grid).save(args.out / "samples.png")
    (args.out / "lcm_quality.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lora", type=Path, default=None,
                        help="lcm_lora.safetensors of `train lcm` [default: the built-in keypaint-lcm]")
    parser.add_argument("--data", type=Path, default=None, help="folder with heldout/ (else speed only)")
    parser.add_argument("--names", type=int, default=200, help="held-out pairs to paint")
    parser.add_argument("--lcm-steps", type=int, default=4)
    parser.add_argument("--base-steps", type=int, nargs="*", default=[],
                        help="also the base model at these step counts (its default sampler and CFG)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--deep-cache", type=int, nargs="*", default=[2], help="DeepCache intervals to score")
    parser.add_argument("--token-merging", type=float, nargs="*", default=[0.5], help="ToMe ratios to score")
    parser.add_argument("--grid", type=int, default=12, help="pairs shown in samples.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("outputs/lcm-quality"))
    args = parser.parse_args()
    if args.lora is None:
        from keypaint.core.adapters import builtin_loras_dir

        args.lora = builtin_loras_dir() / "keypaint-lcm.safetensors"
    if not args.lora.is_file():
        raise SystemExit(f"{args.lora}: no such LoRA file")
    run(args)


if __name__ == "__main__":
    main()
