"""Judge the pictures `style_grid.py` painted: adoption by a style classifier, content by the scorer.

    python benchmarks/style_judge.py outputs/style-grid --base-data data/train [--scorer DIR]

The same measure as `keypaint eval style` (keypaint.scorer.style_eval.judge_style), on pictures painted
elsewhere (a GPU machine, or several recipes at once). One classifier per style is trained on real pictures
(the style's `real/` folder against 4,000 of the base's, evaluated names left out), cached beside the
grid as `classifier-STYLE.safetensors`. Prints and writes `results.md` / `results.json`: one row per
recipe, style and LoRA weight, with the training minutes `style_grid.py` recorded.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid", type=Path, help="style_grid.py's --out")
    parser.add_argument("--data", type=Path, default=Path(".gpu/finetune/data"))
    parser.add_argument("--base-data", type=Path, required=True, help="the built-in model's train/ folder")
    parser.add_argument("--scorer", type=Path, default=None, help="default: the shipped scorer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = judge(args)
    table = markdown(rows)
    (args.grid / "results.md").write_text(table + "\n", encoding="utf-8")
    (args.grid / "results.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(table)


def judge(args: argparse.Namespace) -> list[dict]:
    from keypaint.data.folder import load_folder
    from keypaint.scorer.model import Scorer
    from keypaint.scorer.style_classifier import StyleClassifier
    from keypaint.scorer.style_eval import fit_instrument, judge_style, style_sets

    scorer = Scorer.load(args.scorer)
    base_records = load_folder(args.base_data, check_images=False)
    rows: list[dict] = []
    for style_dir in sorted(p for p in (args.data).iterdir() if (p / "real").is_dir()):
        style = style_dir.name
        recipes = sorted(p.parent for p in args.grid.glob(f"*/{style}/meta.json"))
        if not recipes:
            continue
        first = json.loads((recipes[0] / "meta.json").read_text())
        heldout = load_folder(style_dir / "heldout", check_images=False)
        order = {name: i for i, name in enumerate(first["names"])}
        heldout = sorted(
            (r for r in heldout if r.fields["label"] in order), key=lambda r: order[r.fields["label"]]
        )
        sets = style_sets(load_folder(style_dir / "real", check_images=False), heldout, base_records)
        cached = args.grid / f"classifier-{style}.safetensors"
        if cached.is_file():
            classifier = StyleClassifier.load(cached)
        else:
            classifier = fit_instrument(sets, seed=args.seed)
            classifier.save(cached, {"real": str(style_dir / "real")})
        for recipe in recipes:
            meta = json.loads((recipe / "meta.json").read_text())
            base_dir = next(r / "base" for r in [recipe, *recipes] if (r / "base").is_dir())
            painted = {tag: _pick(_load(recipe / tag), order, sets.names) for tag in meta["variants"]}
            base = _pick(_load(base_dir), order, sets.names)
            report, _ = judge_style(scorer, sets, classifier, base, painted)
            for tag, values in report.variants.items():
                rows.append({
                    "recipe": meta["tag"], "method": meta["method"], "options": meta["options"],
                    "style": style, "variant": tag, **values,
                    "instrument": report.instrument, "names": len(sets.names), "left_out": sets.left_out,
                    "real_top5": report.real["top5"],
                    "base": report.base, "train_minutes": meta["train_minutes"], "device": meta["device"],
                    "seconds_per_picture": meta["variants"][tag]["seconds_per_picture"],
                })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| recipe | style | weight | adoption | top-5 | real's top-5 | content ratio | base adoption | "
        "instrument (real / base) | train minutes | device |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        inst = r["instrument"]
        lines.append(
            f"| {r['recipe']} | {r['style']} | {r['variant'].removeprefix('w')} | {r['adoption']:.0%} | "
            f"{r['top5']:.2f} | {r['real_top5']:.2f} | {r['content_ratio']:.2f} | "
            f"{r['base']['adoption']:.0%} | {inst['real_share']:.0%} / {inst['base_share']:.0%} | "
            f"{r['train_minutes']:.1f} | {r['device']} |"
        )
    return "\n".join(lines)


def _pick(images: list[Image.Image], order: dict[str, int], names: list[str]) -> list[Image.Image]:
    """The pictures of `names`, from a list painted in `order`'s order."""
    return [images[order[name]] for name in names]


def _load(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


if __name__ == "__main__":
    main()
