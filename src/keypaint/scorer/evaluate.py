"""`keypaint eval`: the model's pictures for held-out (label, style) pairs, judged by the scorer.

Keyword fidelity is the scorer's top-1/top-5 retrieval of the asked label among all labels, for generated
pictures beside the same figure for the real held-out pictures (the ceiling the scorer allows). Realism is
the Fréchet distance between generated and real pictures in the scorer's image feature space.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from keypaint.data.captions import style_keyword
from keypaint.data.folder import Record
from keypaint.errors import KeypaintError
from keypaint.scorer.data import load_image_array, record_label, record_style
from keypaint.scorer.metrics import frechet_distance, topk_accuracy
from keypaint.scorer.model import Scorer

if TYPE_CHECKING:
    from keypaint.core.painter import Painter

SYNONYMS = Path(__file__).resolve().parent / "synonyms.txt"  # the shipped synonym probe set


@dataclass(frozen=True)
class Pair:
    """One held-out (label, style) pair and the real picture of it."""

    label: str
    style: str
    path: Path
    typed: str = ""  # a synonym probe: the word typed instead of the label ("cheeseburger" for hamburger)

    @property
    def prompt(self) -> str:
        """What a person would type for it: "red apple, noto style" (just the label without a style)."""
        if self.typed:
            return self.typed
        return f"{self.label}, {style_keyword(self.style)}" if self.style else self.label


def heldout_pairs(records: list[Record], limit: int | None = None) -> list[Pair]:
    """The first record of each distinct (label, style), in file order; at most `limit`."""
    pairs: dict[tuple[str, str], Pair] = {}
    for record in records:
        key = (record_label(record), record_style(record))
        pairs.setdefault(key, Pair(key[0], key[1], record.path))
    return list(pairs.values())[:limit]


def read_probes(path: Path = SYNONYMS) -> list[tuple[str, str]]:
    """(word, label) rows of a synonym probe file: tab-separated, `#` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeypaintError(f"{path}: cannot read the probe file ({exc.strerror})") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        word, sep, label = line.partition("\t")
        if not sep or not word.strip() or not label.strip():
            raise KeypaintError(f"{path}:{number}: expected 'word<TAB>label'")
        rows.append((word.strip(), label.strip()))
    if not rows:
        raise KeypaintError(f"{path}: no probes")
    return rows


def probe_pairs(probes: list[tuple[str, str]], records: list[Record]) -> list[Pair]:
    """A pair per probe whose label has a real picture in `records` (its first), painted from the word."""
    pictures: dict[str, Path] = {}
    for record in records:
        pictures.setdefault(record_label(record), record.path)
    return [Pair(label, "", pictures[label], typed=word) for word, label in probes if label in pictures]


def generate_pairs(
    painter: Painter, pairs: list[Pair], *, steps: int, seed: int, guidance_scale: float | None = None,
    expand_keywords: bool = True,
) -> tuple[list[Image.Image], float]:
    """One picture per pair (seed + i), and the mean seconds per picture."""
    from keypaint.core.params import GenerationParams

    extra: dict[str, Any] = {"expand_keywords": expand_keywords}
    if guidance_scale is not None:
        extra["guidance_scale"] = guidance_scale
    images, start = [], time.perf_counter()
    for i, pair in enumerate(pairs):
        params = GenerationParams(prompt=pair.prompt, seed=seed + i, steps=steps, **extra)
        images.append(painter.generate(params)[0].image)
    return images, (time.perf_counter() - start) / max(1, len(pairs))


def score_pictures(
    scorer: Scorer,
    generated: list[Image.Image],
    real: list[Image.Image],
    true_labels: list[str],
    all_labels: list[str],
) -> dict[str, Any]:
    """Top-1/top-5 of generated and real pictures among `all_labels`, and their Fréchet distance."""
    labels = list(dict.fromkeys(all_labels))
    index = {label: i for i, label in enumerate(labels)}
    truth = torch.tensor([index[label] for label in true_labels], dtype=torch.long)
    label_feats = scorer.text_features(labels)
    gen_feats, real_feats = scorer.image_features(generated), scorer.image_features(real)
    gen_acc = topk_accuracy(gen_feats @ label_feats.T, truth, (1, 5))
    real_acc = topk_accuracy(real_feats @ label_feats.T, truth, (1, 5))
    return {
        "generated": {"top1": gen_acc[1], "top5": gen_acc[5]},
        "real": {"top1": real_acc[1], "top5": real_acc[5]},
        "top5_ratio": gen_acc[5] / real_acc[5] if real_acc[5] > 0 else None,
        "frechet_distance": frechet_distance(gen_feats, real_feats),
        "pairs": len(true_labels),
        "labels": len(labels),
    }


def sample_grid(
    real: list[Image.Image], generated: list[Image.Image], columns: int = 8, tile: int = 96
) -> Image.Image:
    """Rows of real pictures, each above the generated row for the same pairs."""
    count = min(len(real), len(generated))
    rows = max(1, -(-count // columns))
    grid = Image.new("RGB", (columns * tile, rows * 2 * tile + (rows - 1) * tile // 8), "white")
    for i in range(count):
        x, y = (i % columns) * tile, (i // columns) * (2 * tile + tile // 8)
        grid.paste(real[i].convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC), (x, y))
        grid.paste(generated[i].convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC), (x, y + tile))
    return grid


def write_report(out: Path, results: dict[str, Any], grid: Image.Image) -> list[Path]:
    """eval.json, eval.md (a table for the model card) and samples.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    gen, real = results["generated"], results["real"]
    ratio = results.get("top5_ratio")
    lines = [
        f"Held-out (label, style) pairs: {results['pairs']}, ranked among {results['labels']} labels "
        f"by the scorer (prompt = label alone).",
        "",
        "| pictures | top-1 | top-5 |",
        "|---|---|---|",
        f"| real held-out | {real['top1']:.3f} | {real['top5']:.3f} |",
        f"| generated | {gen['top1']:.3f} | {gen['top5']:.3f} |",
        "",
        f"- generated top-5 / real top-5: {ratio:.3f}" if ratio is not None else "- real top-5 is 0",
        f"- Fréchet distance, generated vs real, scorer space: {results['frechet_distance']:.4f}",
    ]
    if "seconds_per_picture" in results:
        lines.append(
            f"- seconds per picture: {results['seconds_per_picture']:.2f} ({results.get('device', '?')})"
        )
    paths = [out / "eval.json", out / "eval.md", out / "samples.png"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    grid.save(paths[2])
    return paths


def real_pictures(pairs: list[Pair], size: int) -> list[Image.Image]:
    """The held-out pictures, flattened on white at `size` (the model's native size)."""
    return [Image.fromarray(load_image_array(pair.path, size)) for pair in pairs]


def run_report(
    scorer: Scorer,
    pairs: list[Pair],
    generated: list[Image.Image],
    real: list[Image.Image],
    all_labels: list[str],
    out: Path,
    *,
    grid: int = 32,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """Score the pictures and write eval.json, eval.md and samples.png; returns (results, paths)."""
    results = {
        **(extra or {}),
        **score_pictures(scorer, generated, real, [p.label for p in pairs], all_labels),
    }
    return results, write_report(out, results, sample_grid(real[:grid], generated[:grid]))
