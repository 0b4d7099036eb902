"""Can `keypaint finetune` teach the built-in model a new style from 10 pictures? (issue 5)

    python benchmarks/finetune_data.py                      # once, where npm works: .gpu/finetune/data
    python benchmarks/finetune.py                           # train both styles, paint, score, figures
    python benchmarks/finetune.py --quick                   # 20 steps, 4 names: a smoke run (tests)

Two black-and-white emoji styles the built-in model never saw (`@iconify-json/fluent-emoji-high-contrast`,
`@iconify-json/emojione-monotone`). For each: a LoRA is trained on 10 of its pictures (captions: the
emoji's CLDR keywords plus a rare token), then the same 50 held-out emoji names are painted with the LoRA
("NAME, TOKEN", LoRA weights 1 and 0.6) and by the base model ("NAME"), one seed per name. The LoRA is
trained on the very model object that paints, so both see the same weights. Reported:

- style adoption: the share of pictures in the new style, judged by colourfulness (Hasler and Süsstrunk
  2003: M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), rg = R - G, yb = (R + G)/2 - B):
  a picture counts when M < 15 ("not colourful" to "slightly colourful" on their scale) and at least 2%
  of it is dark ink (luminance < 128), so a blank page does not count;
- content kept: keyword fidelity, the scorer's top-5 retrieval of the asked name among its 1,639 labels,
  with the LoRA vs the base model (goal: >= 0.8 x the base model's);
- minutes to train (this machine's CPU, or the GPU it runs on) and the LoRA's file size.

On a CPU other programs share, run it with OMP_NUM_THREADS=1 (spinning OpenMP threads slow it 60-fold).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")  # not one "no text-encoder LoRA keys" line per LoRA
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from keypaint.scorer.style_eval import picture_rows

if TYPE_CHECKING:
    from keypaint import Painter
    from keypaint.scorer import Scorer

COLOURFUL = 15.0  # Hasler-Süsstrunk M below this: at most "slightly colourful"
MIN_INK = 0.02  # share of dark pixels a drawing needs
DATA = Path(".gpu/finetune/data")


def colourfulness(image: Image.Image) -> float:
    """Hasler and Süsstrunk's M over all pixels (0 for pure greys)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def ink(image: Image.Image) -> float:
    """Share of pixels darker than mid-grey."""
    return float((np.asarray(image.convert("L"), dtype=np.float64) < 128).mean())


def in_style(image: Image.Image) -> bool:
    return colourfulness(image) < COLOURFUL and ink(image) >= MIN_INK


grid = picture_rows  # rows of pictures side by side: the figure `keypaint eval style` writes too


def paint(
    painter: Painter, prompts: list[str], seed: int, steps: int, loras: tuple = (), embeddings: tuple = ()
) -> tuple[list[Image.Image], float]:
    from keypaint.core.params import GenerationParams

    images, start = [], time.perf_counter()
    for i, prompt in enumerate(prompts):
        params = GenerationParams(
            prompt=prompt, seed=seed + i, steps=steps, loras=loras, embeddings=embeddings
        )
        images.append(painter.generate(params)[0].image)
    return images, (time.perf_counter() - start) / max(1, len(prompts))


def fidelity(scorer: Scorer, images: list[Image.Image], names: list[str], labels: list[str]) -> float:
    from keypaint.scorer.metrics import topk_accuracy

    index = {label: i for i, label in enumerate(labels)}
    truth = torch.tensor([index[name] for name in names], dtype=torch.long)
    sims = scorer.image_features(images) @ scorer.text_features(labels).T
    return float(topk_accuracy(sims.cpu(), truth, (5,))[5])


def run(args: argparse.Namespace) -> dict:
    from keypaint import Painter
    from keypaint.core.params import LoraRef
    from keypaint.finetune import FinetuneConfig, Method
    from keypaint.finetune.train import finetune
    from keypaint.scorer import Scorer
    from keypaint.scorer.model import BUILTIN_DIR

    sources = json.loads((args.data / "sources.json").read_text(encoding="utf-8"))
    names = sources["heldout"][: args.names]
    labels = (BUILTIN_DIR / "labels.txt").read_text(encoding="utf-8").splitlines()
    home = args.out / "home"
    # one fp32 copy of the built-in model: trained on and painted with (the same weights for both)
    painter = Painter.load(None, device=args.device, dtype="fp32", home=home)
    scorer = Scorer.load(None, device=painter.device)
    device = str(painter.device)
    base_images, base_seconds = paint(painter, names, args.seed, args.gen_steps)
    base_fidelity = fidelity(scorer, base_images, names, labels)
    results: dict = {
        "device": torch.cuda.get_device_name() if painter.device.type == "cuda" else "cpu",
        "names": len(names),
        "base_model": {"name": painter.model.name, "sha256": painter.model.sha256},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "base": {
            "adoption": np.mean([in_style(i) for i in base_images]),
            "top5": base_fidelity,
            "seconds_per_picture": base_seconds,
        },
        "styles": {},
    }
    prior = paint_prior(painter, args, labels, names, sources) if args.prior else None
    figures: list[Path] = []
    for name, style in sources["styles"].items():
        if args.styles and name not in args.styles:
            continue
        start = time.perf_counter()
        cfg = FinetuneConfig(args.data / name / "train", style["token"], method=Method(args.method))
        method = cfg.resolved().method  # auto: what it picks for the built-in model
        result = finetune(
            replace(
                cfg,
                steps=args.steps,
                lr=args.lr,
                rank=args.rank if method.makes_lora else None,
                targets=args.targets if method.makes_lora else None,
                max_timestep=args.max_timestep,
                vectors=args.vectors if method.trains_vectors else None,
                batch_size=args.batch_size,
                home=home,
                seed=args.seed,
                cpu=device == "cpu",
                sample_every=0,
                checkpoint_every=max(50, args.steps // 4),
                class_dir=prior if method is not Method.TEXTUAL_INVERSION else None,
                class_images=args.prior or 50,
                prior_weight=args.prior_weight,
            ),
            model=painter.model,
            progress=not args.no_progress,
        )
        train_minutes = (time.perf_counter() - start) / 60
        real = [Image.open(args.data / name / "heldout" / f) for f in _heldout_files(args.data / name, names)]
        entry: dict = {
            "token": style["token"],
            "method": result.method,
            "adoption_base": float(np.mean([in_style(i) for i in base_images])),
            "adoption_real": float(np.mean([in_style(i) for i in real])),
            "top5_base": base_fidelity,
            "top5_real": fidelity(scorer, real, names, labels),
            "colourfulness_median_base": float(np.median([colourfulness(i) for i in base_images])),
            "train_minutes": train_minutes,
            "train_steps_minutes": result.train_seconds / 60,
            "file_bytes": result.bytes,
            "final_loss": result.loss,
            "by_weight": {},
        }
        prompts = [f"{n}, {style['token']}" for n in names]
        rows = [real[: args.grid], base_images[: args.grid]]
        for weight in args.weights if method.makes_lora else [1.0]:
            adapters: dict = {}
            if method.makes_lora:
                adapters = {"loras": (LoraRef(str(result.path), weight),)}
            elif method is Method.TEXTUAL_INVERSION:
                adapters = {"embeddings": (str(result.path),)}
            tuned = painter if method is not Method.FULL else Painter.load(
                str(result.path), device=args.device, dtype="fp32", home=home
            )  # full: the model folder it wrote
            images, seconds = paint(tuned, prompts, args.seed, args.gen_steps, **adapters)
            top5 = fidelity(scorer, images, names, labels)
            entry["by_weight"][f"{weight:g}"] = {
                "adoption": float(np.mean([in_style(i) for i in images])),
                "top5": top5,
                "fidelity_ratio": top5 / base_fidelity if base_fidelity else None,
                "fidelity_vs_real": top5 / entry["top5_real"] if entry["top5_real"] else None,
                "colourfulness_median": float(np.median([colourfulness(i) for i in images])),
                "seconds_per_picture": seconds,
            }
            rows.append(images[: args.grid])
        results["styles"][name] = entry
        path = args.out / f"finetune-{name}.png"
        grid(rows).save(path)
        figures.append(path)
        print(json.dumps({name: entry}), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(table(results) + "\n", encoding="utf-8")
    print(table(results))
    print("figures:", ", ".join(str(p) for p in figures))
    return results


def paint_prior(
    painter: Painter, args: argparse.Namespace, labels: list[str], names: list[str], sources: dict
) -> Path:
    """The base model's own pictures of other emoji (captioned): the prior that keeps its content."""
    folder = args.out / "prior"
    folder.mkdir(parents=True, exist_ok=True)
    used = set(names) | {label for style in sources["styles"].values() for label in style["train"]}
    chosen = random.Random(args.seed).sample([label for label in labels if label not in used], args.prior)
    images, _ = paint(painter, chosen, args.seed + 100_000, args.gen_steps)
    for i, (label, image) in enumerate(zip(chosen, images, strict=True)):
        image.save(folder / f"prior-{i:03d}.png")
        (folder / f"prior-{i:03d}.txt").write_text(label + "\n", encoding="utf-8")
    return folder


def _heldout_files(folder: Path, names: list[str]) -> list[str]:
    rows = [
        json.loads(line) for line in (folder / "heldout" / "metadata.jsonl").read_text().splitlines() if line
    ]
    by_label = {row["label"]: row["file_name"] for row in rows}
    return [by_label[name] for name in names]


def table(results: dict) -> str:
    lines = [
        f"{results['names']} held-out names, device: {results['device']}",
        "",
        "| style | LoRA weight | adoption | without | real pictures | top-5 | base model | ratio | "
        "real's top-5 | train minutes | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["styles"].items():
        for weight, w in e["by_weight"].items():
            ratio = f"{w['fidelity_ratio']:.2f}" if w["fidelity_ratio"] is not None else "n/a"
            own = {"textual-inversion": "TI", "full": "full"}
            kind = own.get(e["method"], weight if e["method"] == "lora" else f"{e['method']} {weight}")
            lines.append(
                f"| {name} | {kind} | {w['adoption']:.0%} | {e['adoption_base']:.0%} | "
                f"{e['adoption_real']:.0%} | {w['top5']:.2f} | {e['top5_base']:.2f} | {ratio} | "
                f"{e['top5_real']:.2f} | "
                f"{e['train_minutes']:.1f} | {e['file_bytes'] / 1e6:.2f} MB |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="from benchmarks/finetune_data.py")
    parser.add_argument("--out", type=Path, default=Path("outputs/finetune-benchmark"))
    parser.add_argument("--steps", type=int, default=300, help="LoRA training steps per style")
    parser.add_argument("--lr", type=float, default=None, help="default: the method's (1e-4 LoRA family)")
    parser.add_argument("--rank", type=int, default=None, help="LoRA family (default 8)")
    parser.add_argument("--targets", default=None, help="LoRA layers: all, attention, cross-attention; "
                        "b-lora: style, content, both")
    parser.add_argument("--method", default="lora", help="any of keypaint finetune's: auto, lora, dora, "
                        "loha, lokr, b-lora, pivotal, dreambooth, textual-inversion, full")
    parser.add_argument("--max-timestep", type=int, default=1000, help="train on noise levels below this")
    parser.add_argument("--vectors", type=int, default=None, help="textual inversion, pivotal (default 4)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.6], help="LoRA weights to paint")
    parser.add_argument("--prior", type=int, default=0, help="base-model pictures of other emoji as prior")
    parser.add_argument("--prior-weight", type=float, default=1.0)
    parser.add_argument("--names", type=int, default=50, help="held-out names to paint")
    parser.add_argument("--gen-steps", type=int, default=20)
    parser.add_argument("--grid", type=int, default=10, help="names shown in each figure")
    parser.add_argument("--styles", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: the GPU if there is one)")
    parser.add_argument("--quick", action="store_true", help="20 steps, 4 names")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.names, args.gen_steps, args.grid = 20, 4, 4, 4
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "home").exists():
        raise SystemExit(f"{args.out} holds an earlier run; choose another --out")
    run(args)


if __name__ == "__main__":
    main()
