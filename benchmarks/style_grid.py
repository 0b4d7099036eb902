"""Train one fine-tuning recipe per style and paint the held-out names: the pictures `style_judge.py` judges.

    python benchmarks/style_grid.py --tag lora --method lora            # on a GPU machine or here
    python benchmarks/style_judge.py outputs/style-grid                  # here: classifier + scorer

Split in two so that the GPU only trains and paints, and the judging (a style classifier trained on the
base model's 11,848 real pictures, the scorer) runs where that data is. For each style of
`benchmarks/finetune_data.py`: `keypaint finetune` with the recipe on the style's 10 pictures, then the
50 held-out names painted by the base model ("NAME") and with the result ("NAME, TOKEN") at each LoRA
weight, seed 0 + i, 20 steps of the default sampler, keyword expansion on (as users get it). Writes
`OUT/TAG/STYLE/{base,w1,...}/NNN.png` and `OUT/TAG/STYLE/meta.json` (recipe, training seconds, device).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(".gpu/finetune/data"))
    parser.add_argument("--out", type=Path, default=Path("outputs/style-grid"))
    parser.add_argument("--tag", required=True, help="the recipe's name: OUT/TAG/...")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--steps", type=int, default=None, help="default: finetune's own")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--targets", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.6])
    parser.add_argument("--names", type=int, default=50)
    parser.add_argument("--gen-steps", type=int, default=20)
    parser.add_argument("--styles", nargs="*", default=None)
    parser.add_argument("--no-base", action="store_true", help="do not paint the base model's pictures")
    parser.add_argument("--prior", type=int, default=0,
                        help="the base model's own pictures of N other labels as the prior (class) set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    from keypaint import Painter
    from keypaint.core.params import LoraRef
    from keypaint.finetune import FinetuneConfig, Method
    from keypaint.finetune.train import finetune
    from keypaint.scorer.style_eval import paint_names

    sources = json.loads((args.data / "sources.json").read_text(encoding="utf-8"))
    names = sources["heldout"][: args.names]
    home = args.out / args.tag / "home"
    painter = Painter.load(None, device=args.device, dtype="fp32", home=home)
    device = torch.cuda.get_device_name() if painter.device.type == "cuda" else "cpu"
    for style_name, style in sources["styles"].items():
        if args.styles and style_name not in args.styles:
            continue
        folder = args.out / args.tag / style_name
        folder.mkdir(parents=True, exist_ok=True)
        if not args.no_base:
            base, _ = paint_names(painter, names, steps=args.gen_steps, seed=args.seed)
            _save(folder / "base", base)
        options = {k: v for k, v in {"steps": args.steps, "lr": args.lr, "rank": args.rank,
                                      "targets": args.targets, "batch_size": args.batch_size}.items()
                   if v is not None}
        if args.prior:
            options["class_dir"] = paint_prior(painter, args, names, sources)
        start = time.perf_counter()
        result = finetune(
            FinetuneConfig(images=args.data / style_name / "train", token=style["token"],
                           method=Method(args.method), home=home, seed=args.seed,
                           cpu=painter.device.type == "cpu", **options),
            model=painter.model, progress=False,
        )
        minutes = (time.perf_counter() - start) / 60
        meta = {"tag": args.tag, "method": result.method,
                "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
                "device": device,
                "train_minutes": minutes, "train_steps_minutes": result.train_seconds / 60,
                "file": str(result.path), "bytes": result.bytes, "loss": result.loss, "names": names,
                "token": style["token"], "variants": {}}
        full = result.method == Method.FULL.value  # a model folder: painted by a painter of its own
        is_lora = not full and "embeddings" not in result.path.parts
        tuned = (
            Painter.load(str(result.path), device=painter.device, dtype="fp32", home=home) if full else None
        )
        for weight in args.weights if is_lora else [1.0]:
            adapters: dict = (
                {} if full else {"loras": (LoraRef(str(result.path), weight),)} if is_lora
                else {"embeddings": (str(result.path),)}
            )
            start = time.perf_counter()
            images, _ = paint_names(tuned or painter, names, steps=args.gen_steps, seed=args.seed,
                                    token=style["token"], **adapters)
            tag = f"w{weight:g}"
            _save(folder / tag, images)
            meta["variants"][tag] = {"seconds_per_picture": (time.perf_counter() - start) / len(names)}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        print(json.dumps({"style": style_name, "tag": args.tag, "train_minutes": round(minutes, 2)}),
              flush=True)


def paint_prior(painter: Any, args: argparse.Namespace, names: list[str], sources: dict) -> Path:
    """The base model's own pictures of other labels, captioned: the prior that keeps what words mean."""
    import random

    from keypaint.scorer.model import BUILTIN_DIR
    from keypaint.scorer.style_eval import paint_names

    folder = args.out / args.tag / "prior"
    if folder.is_dir():
        return folder
    labels = (BUILTIN_DIR / "labels.txt").read_text(encoding="utf-8").splitlines()
    used = set(names) | {label for style in sources["styles"].values() for label in style["train"]}
    chosen = random.Random(args.seed).sample([label for label in labels if label not in used], args.prior)
    images, _ = paint_names(painter, chosen, steps=args.gen_steps, seed=args.seed + 100_000)
    folder.mkdir(parents=True)
    for i, (label, image) in enumerate(zip(chosen, images, strict=True)):
        image.save(folder / f"prior-{i:03d}.png")
        (folder / f"prior-{i:03d}.txt").write_text(label + "\n", encoding="utf-8")
    return folder


def _save(folder: Path, images: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(folder / f"{i:03d}.png")


if __name__ == "__main__":
    main()
