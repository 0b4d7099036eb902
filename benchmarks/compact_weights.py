"""What do the compact (int8, per-channel) built-in weights cost against the fp16 ones they were made from?

    python benchmarks/compact_weights.py FP16_WEIGHTS [--prompts 24] [--steps 20] [--scorer-fp16 DIR]

FP16_WEIGHTS is a built-in weights folder with plain fp16 files (an older commit's
src/keypaint/builtin/weights). Both models paint the same prompts (labels spread over the keyword
vocabulary, keyword expansion on) with the same seeds at the defaults, side by side in one run. The script
prints the PSNR of each compact picture against its fp16 picture (mean, median, min), the same for the fp16
weights rounded to bfloat16 (a control: the precision GPUs paint in) and, with --scorer-fp16, the
scorer's fidelity: the cosine similarity of the compact scorer's image features to the fp16 scorer's on
the same pictures, and how often both put the same label first among the prompts' labels.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np
import torch
from PIL import Image

from keypaint.explain.latent import psnr


def paint(weights: Path, prompts: list[str], steps: int, bf16: bool = False) -> list[Image.Image]:
    """One picture per prompt; `bf16`: the weights rounded to bfloat16 first (the control)."""
    from keypaint import Painter
    from keypaint.builtin import load_builtin
    from keypaint.core.params import GenerationParams

    model = load_builtin(weights=weights)
    if bf16:
        with torch.no_grad():
            for module in (model.pipe.unet, model.pipe.vae):
                for p in module.parameters():
                    p.copy_(p.to(torch.bfloat16).float())
    painter = Painter(model)
    return [painter.generate(GenerationParams(prompt=p, seed=i, steps=steps))[0].image
            for i, p in enumerate(prompts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fp16", type=Path, help="a built-in weights folder with plain fp16 files")
    parser.add_argument("--compact", type=Path, default=None,
                        help="compact weights (default: the shipped ones)")
    parser.add_argument("--scorer-fp16", type=Path, default=None, help="a scorer folder with fp16 weights")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from keypaint.builtin import WEIGHTS_DIR
    from keypaint.keywords.vocabulary import Vocabulary
    from keypaint.scorer.model import Scorer

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    compact = args.compact or WEIGHTS_DIR
    vocabulary = Vocabulary.beside(compact)
    if vocabulary is None:
        sys.exit(f"{compact}: no keywords.json")
    labels = sorted(vocabulary.related)[:: max(1, len(vocabulary) // args.prompts)][: args.prompts]
    plain, small = paint(args.fp16, labels, args.steps), paint(compact, labels, args.steps)
    control = paint(args.fp16, labels, args.steps, bf16=True)
    for name, images in (("compact", small), ("bf16 control", control)):
        scores = [psnr(a, b) for a, b in zip(plain, images, strict=True)]
        print(f"U-Net + VAE, {len(labels)} pictures, PSNR {name} vs fp16: mean {np.mean(scores):.1f} dB, "
              f"median {np.median(scores):.1f} dB, min {min(scores):.1f} dB")
    if args.scorer_fp16 is not None:
        a, b = Scorer.load(args.scorer_fp16), Scorer.load()
        fa, fb = a.image_features(plain + small), b.image_features(plain + small)
        cos = (fa * fb).sum(-1)
        ta, tb = a.text_features(labels), b.text_features(labels)
        same = ((fa @ ta.T).argmax(-1) == (fb @ tb.T).argmax(-1)).float().mean()
        print(f"scorer: image-feature cosine compact vs fp16 mean {cos.mean():.4f} min {cos.min():.4f}; "
              f"same first label {same:.3f}")


if __name__ == "__main__":
    main()
