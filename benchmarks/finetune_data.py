"""The fine-tuning benchmark's pictures: two black-and-white emoji styles the built-in model never saw.

    python benchmarks/finetune_data.py --npm .gpu/finetune/npm --out .gpu/finetune/data

For each style: the npm package is fetched with keypaint's npm helper (`npm pack`, once, into --npm),
its icons are matched to emoji names with the same code as `keypaint data emoji`, and 10 icons are
rendered at 128 px as a training folder (`<style>/train/NAME.png` + `NAME.txt` caption: label and CLDR
tags). The 50 held-out names are the same for both styles: emoji the built-in model was trained on (its
`train/metadata.jsonl` labels), drawn in both styles, and not among either style's training pictures;
their real pictures in each style go to `<style>/heldout/` for the picture grids and the content measure.
Every other picture of the style (names disjoint from the held-out ones) goes to `<style>/real/`, with a
metadata.jsonl: what `keypaint eval style` trains its style classifier on. Everything is chosen
by a seeded shuffle, so a rerun gives the same folders. The result is small (about 1 MB) and is what the
GPU machine needs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from keypaint.data.emoji import EMOJIBASE, EmojiSet, Sample, SetStats, plan_set
from keypaint.data.emojibase import load_emojibase
from keypaint.data.iconify import load_icon_set
from keypaint.data.npm import NpmPackage, resolve_tarballs, sha256_file
from keypaint.data.render import render_svg

TRAIN_IMAGES = 10
HELDOUT_NAMES = 50
SIZE = 128
# Groups whose emoji make clear single-subject pictures (people and flags are left to other tests).
GROUPS = ("smileys-emotion", "animals-nature", "food-drink", "travel-places", "activities", "objects")


@dataclass(frozen=True)
class Style:
    """A style to learn: its npm package and the rare word that calls it up after training."""

    name: str
    package: NpmPackage
    token: str


STYLES = (
    Style("fluent-high-contrast", NpmPackage("@iconify-json/fluent-emoji-high-contrast", "1.2.6"), "zxhc"),
    Style("emojione-monotone", NpmPackage("@iconify-json/emojione-monotone", "1.2.1"), "zxmono"),
)


def known_labels(emoji_data: Path) -> set[str]:
    """The labels the built-in model was trained on."""
    lines = (emoji_data / "train" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["label"] for line in lines if line.strip()}


def _caption(sample: Sample) -> str:
    words = [sample.row["label"], *sample.row["tags"]]
    seen: list[str] = []
    for word in words:
        if word.lower() not in (w.lower() for w in seen):
            seen.append(word)
    return ", ".join(seen)


def prepare(npm: Path, out: Path, emoji_data: Path, seed: int = 0) -> dict:
    """Render both styles' training and held-out folders into `out`; returns what was written."""
    tarballs = resolve_tarballs([EMOJIBASE, *(s.package for s in STYLES)], npm_cache=npm)
    index, _ = load_emojibase(tarballs[EMOJIBASE.name])
    known = known_labels(emoji_data)
    per_style: dict[str, dict[str, Sample]] = {}
    for style in STYLES:
        icon_set = load_icon_set(tarballs[style.package.name])
        stats = SetStats(style=style.name, package=style.package.name)
        samples = plan_set(icon_set, EmojiSet(style.name, style.package), index, stats, 0.0)
        per_style[style.name] = {
            s.row["label"]: s for s in samples if s.row["group"] in GROUPS and s.row["label"] in known
        }
    rng = random.Random(seed)
    train: dict[str, list[str]] = {}
    for style in STYLES:
        labels = sorted(per_style[style.name])
        train[style.name] = rng.sample(labels, TRAIN_IMAGES)
    used = {label for labels in train.values() for label in labels}
    common = sorted(set.intersection(*(set(v) for v in per_style.values())) - used)
    heldout = rng.sample(common, HELDOUT_NAMES)

    if out.exists():
        shutil.rmtree(out)
    report: dict = {"seed": seed, "size": SIZE, "heldout": heldout, "styles": {}}
    for style in STYLES:
        folder = out / style.name
        (folder / "train").mkdir(parents=True)
        (folder / "heldout").mkdir(parents=True)
        for label in train[style.name]:
            sample = per_style[style.name][label]
            stem = sample.row["file_name"].removesuffix(".png")
            render_svg(sample.svg, SIZE).save(folder / "train" / f"{stem}.png")
            (folder / "train" / f"{stem}.txt").write_text(_caption(sample) + "\n", encoding="utf-8")
        rows = []
        for label in heldout:
            sample = per_style[style.name][label]
            render_svg(sample.svg, SIZE).save(folder / "heldout" / sample.row["file_name"])
            rows.append({"file_name": sample.row["file_name"], "text": _caption(sample), "label": label})
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (folder / "heldout" / "metadata.jsonl").write_text(lines, encoding="utf-8")
        _write_real(folder / "real", per_style[style.name], set(heldout), style.name)
        tarball = tarballs[style.package.name]
        report["styles"][style.name] = {
            "package": style.package.name,
            "version": style.package.version,
            "tarball": tarball.name,
            "sha256": sha256_file(tarball),
            "license": load_icon_set(tarball).info.get("license", {}),
            "token": style.token,
            "train": train[style.name],
        }
    (out / "sources.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


def _write_real(folder: Path, samples: dict[str, Sample], heldout: set[str], style: str) -> None:
    """All the style's pictures whose names are not held out, captioned, with their style."""
    folder.mkdir(parents=True)
    rows = []
    for label in sorted(set(samples) - heldout):
        sample = samples[label]
        render_svg(sample.svg, SIZE).save(folder / sample.row["file_name"])
        rows.append({"file_name": sample.row["file_name"], "text": _caption(sample), "label": label,
                     "style": style})
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (folder / "metadata.jsonl").write_text(lines, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--npm", type=Path, default=Path(".gpu/finetune/npm"), help="tarball folder")
    parser.add_argument("--out", type=Path, default=Path(".gpu/finetune/data"))
    parser.add_argument(
        "--emoji-data",
        type=Path,
        default=Path("/tmp/emoji-data"),
        help="the built-in model's training data (`keypaint data emoji`)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = prepare(args.npm, args.out, args.emoji_data, args.seed)
    for name, style in report["styles"].items():
        print(f"{name}: {style['package']}@{style['version']} token {style['token']}, train {style['train']}")
    print(f"held-out names ({len(report['heldout'])}): {', '.join(report['heldout'][:10])} ...")


if __name__ == "__main__":
    main()
