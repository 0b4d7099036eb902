"""`keypaint eval style`: did a fine-tune take on a style, and did the pictures keep what they show?

Issue 18's fair measure, for a style learned from a few pictures:

- **Adoption**: a style classifier (`style_classifier.py`) is trained on real pictures, the target style
  against every style in the base model's data, on names disjoint from the evaluated ones. Adoption is the
  share of generated pictures ("NAME, TOKEN", adapter on) it assigns to the target style. The instrument is
  checked on the spot: it must assign at least 95% of the real held-out pictures of the style to it, and at
  most 5% of the base model's own pictures of the same names ("NAME", no adapter).
- **Content**: the scorer's top-5 retrieval of the asked name among all labels on the generated pictures,
  divided by its top-5 on the real in-style pictures of the same names: being in the style costs nothing,
  only losing the subject does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from keypaint.data.folder import Record
from keypaint.errors import KeypaintError
from keypaint.scorer.data import load_image_array, record_label
from keypaint.scorer.metrics import topk_accuracy
from keypaint.scorer.model import Scorer
from keypaint.scorer.style_classifier import StyleClassifier, train_style_classifier

if TYPE_CHECKING:
    from keypaint.core.painter import Painter

MONOCHROME = 15.0  # Hasler and Süsstrunk's colourfulness M below this: "not" to "slightly colourful"
REAL_SHARE_MIN = 0.95  # the instrument must see the style in at least this share of its real pictures
BASE_SHARE_MAX = 0.05  # ... and in at most this share of the base model's pictures


@dataclass(frozen=True)
class StyleSets:
    """The real pictures a style evaluation stands on."""

    target: list[Record]  # the target style, names disjoint from `heldout`'s: the classifier's positives
    heldout: list[Record]  # the target style, one picture per evaluated name: the content reference
    base: list[Record]  # the base model's training data (its styles), evaluated names left out
    label_space: tuple[str, ...] = ()  # names are ranked among these (and themselves); () = base's labels
    left_out: tuple[str, ...] = ()  # held-out names not evaluated: the base draws them in monochrome too

    @property
    def names(self) -> list[str]:
        return [record_label(r) for r in self.heldout]

    @property
    def labels(self) -> list[str]:
        """The label space names are ranked in: every base label (or `label_space`) and every name."""
        known = set(self.label_space) or {record_label(r) for r in self.base}
        return sorted(known | set(self.names))

    def with_labels(self, labels: list[str]) -> StyleSets:
        return replace(self, label_space=tuple(label for label in labels if label))


def style_sets(
    target: list[Record],
    heldout: list[Record],
    base: list[Record],
    *,
    limit: int | None = None,
    monochrome_names: bool = False,
) -> StyleSets:
    """Keep one held-out picture per name (the first `limit` names) and drop those names elsewhere.

    When the target style is monochrome (the median colourfulness of its real pictures is below
    MONOCHROME), names that the base's own real pictures already draw in monochrome (a spider, fog) are
    left out unless `monochrome_names`: no classifier can tell from such a picture whether the style was
    taken. `StyleSets.left_out` lists them.
    """
    first: dict[str, Record] = {}
    for record in heldout:
        first.setdefault(record_label(record), record)
    kept = list(first.values())
    left_out: list[str] = []
    if not monochrome_names and base and _median_colourfulness(target[:200]) < MONOCHROME:
        by_name: dict[str, list[Record]] = {}
        for record in base:
            by_name.setdefault(record_label(record), []).append(record)
        grey = {
            name for name in first if name in by_name and _median_colourfulness(by_name[name]) < MONOCHROME
        }
        left_out = [record_label(r) for r in kept if record_label(r) in grey]
        kept = [r for r in kept if record_label(r) not in grey]
    kept = kept[:limit]
    names = {record_label(r) for r in kept} | set(left_out)
    sets = StyleSets(
        target=[r for r in target if record_label(r) not in names],
        heldout=kept,
        base=[r for r in base if record_label(r) not in names],
        left_out=tuple(left_out),
    )
    for what, records in (("held-out", sets.heldout), ("target-style", sets.target), ("base", sets.base)):
        if len(records) < 2:
            raise KeypaintError(f"the {what} folder needs at least 2 pictures (of names not evaluated)")
    return sets


def fit_instrument(
    sets: StyleSets, *, negatives: int = 4000, steps: int = 400, seed: int = 0
) -> StyleClassifier:
    """Train the style classifier on real pictures: the target style against a sample of the base's."""
    base = random.Random(seed).sample(sets.base, min(negatives, len(sets.base)))
    return train_style_classifier(_pictures(sets.target), _pictures(base), steps=steps, seed=seed)


@dataclass(frozen=True)
class Variant:
    """One way of painting the evaluated names: adapters on, and whether the token is in the prompt."""

    name: str
    loras: tuple[Any, ...] = ()  # LoraRef
    embeddings: tuple[str, ...] = ()
    painter: Painter | None = None  # another model (a full fine-tune); None: the base painter
    with_token: bool = True


@dataclass
class StyleReport:
    """What `evaluate_style` measured; `as_dict()` is style.json."""

    instrument: dict[str, float | bool]
    real: dict[str, float]
    base: dict[str, float]
    variants: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.extra, "instrument": self.instrument, "real": self.real, "base": self.base,
                "variants": self.variants}


def evaluate_style(
    painter: Painter,
    scorer: Scorer,
    sets: StyleSets,
    classifier: StyleClassifier,
    token: str,
    variants: list[Variant],
    *,
    steps: int = 20,
    seed: int = 0,
) -> tuple[StyleReport, list[list[Image.Image]]]:
    """Paint every evaluated name per variant (seed + i), judge style and content; also the grid's rows."""
    base, base_seconds = paint_names(painter, sets.names, steps=steps, seed=seed)
    painted: dict[str, list[Image.Image]] = {}
    seconds: dict[str, float] = {}
    for variant in variants:
        painted[variant.name], seconds[variant.name] = paint_names(
            variant.painter or painter, sets.names, steps=steps, seed=seed,
            token=token if variant.with_token else None, loras=variant.loras, embeddings=variant.embeddings,
        )
    report, real = judge_style(scorer, sets, classifier, base, painted, size=painter.native_size)
    report.base["seconds_per_picture"] = base_seconds
    for name, value in seconds.items():
        report.variants[name]["seconds_per_picture"] = value
    return report, [real, base, *painted.values()]


def judge_style(
    scorer: Scorer,
    sets: StyleSets,
    classifier: StyleClassifier,
    base: list[Image.Image],
    painted: dict[str, list[Image.Image]],
    *,
    size: int = 128,
) -> tuple[StyleReport, list[Image.Image]]:
    """Judge pictures already painted (one per evaluated name, in order): the base model's and each variant's.

    Returns the report and the real in-style pictures (at `size`) it compared with.
    """
    names, labels = sets.names, sets.labels
    index = {label: i for i, label in enumerate(labels)}
    truth = torch.tensor([index[name] for name in names], dtype=torch.long)
    label_features = scorer.text_features(labels)

    def top5(images: list[Image.Image]) -> float:
        if len(images) != len(names):
            raise KeypaintError(f"{len(images)} pictures for {len(names)} names")
        sims = scorer.image_features(images) @ label_features.T
        return float(topk_accuracy(sims.cpu(), truth, (5,))[5])

    real = [Image.fromarray(load_image_array(r.path, size)) for r in sets.heldout]
    real_top5 = top5(real)
    base_share, real_share = classifier.share(base), classifier.share(real)
    report = StyleReport(
        instrument={
            "real_share": real_share,
            "base_share": base_share,
            "ok": real_share >= REAL_SHARE_MIN and base_share <= BASE_SHARE_MAX,
            "target_pictures": len(sets.target),
        },
        real={"top5": real_top5},
        base={"adoption": base_share, "top5": top5(base)},
    )
    for name, images in painted.items():
        top5_images = top5(images)
        report.variants[name] = {
            "adoption": classifier.share(images),
            "top5": top5_images,
            "content_ratio": top5_images / real_top5 if real_top5 else float("nan"),
        }
    return report, real


def paint_names(
    painter: Painter,
    names: list[str],
    *,
    steps: int,
    seed: int,
    token: str | None = None,
    loras: tuple[Any, ...] = (),
    embeddings: tuple[str, ...] = (),
) -> tuple[list[Image.Image], float]:
    """One picture per name ("NAME" or "NAME, TOKEN"), seed + i; and the mean seconds per picture."""
    from keypaint.core.params import GenerationParams

    images, start = [], time.perf_counter()
    for i, name in enumerate(names):
        prompt = f"{name}, {token}" if token else name
        params = GenerationParams(
            prompt=prompt, seed=seed + i, steps=steps, loras=loras, embeddings=embeddings
        )
        images.append(painter.generate(params)[0].image)
    return images, (time.perf_counter() - start) / max(1, len(names))


def report_markdown(report: StyleReport, token: str) -> str:
    """The table docs/finetune.md shows, one row per variant."""
    inst = report.instrument
    lines = [
        f"Instrument: {inst['real_share']:.0%} of the real held-out pictures and {inst['base_share']:.0%} of "
        f"the base model's pictures are judged in the style ({'valid' if inst['ok'] else 'NOT valid'}: "
        f"needs >= {REAL_SHARE_MIN:.0%} and <= {BASE_SHARE_MAX:.0%}).",
        f"Scorer top-5 of the real in-style pictures: {report.real['top5']:.2f}; base model: "
        f"{report.base['top5']:.2f}.",
        "",
        f"| variant (token `{token}`) | adoption | top-5 | content ratio | s/picture |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in report.variants.items():
        per_picture = f"{v['seconds_per_picture']:.2f}" if "seconds_per_picture" in v else "-"
        lines.append(f"| {name} | {v['adoption']:.0%} | {v['top5']:.2f} | {v['content_ratio']:.2f} | "
                     f"{per_picture} |")
    if report.extra.get("left_out"):
        lines += ["", "Left out (the base's own pictures of them are monochrome too): "
                  + ", ".join(report.extra["left_out"]) + "."]
    return "\n".join(lines)


def picture_rows(rows: list[list[Image.Image]], tile: int = 64, gap: int = 4) -> Image.Image:
    """Rows of pictures side by side, a white gap between rows (real, base model, each variant)."""
    columns = max((len(r) for r in rows), default=1)
    out = Image.new("RGB", (columns * tile, len(rows) * (tile + gap) - gap), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            small = image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS)
            out.paste(small, (c * tile, r * (tile + gap)))
    return out


def colourfulness(image: Image.Image) -> float:
    """Hasler and Süsstrunk's (2003) M of a picture flattened on white (0 for pure greys)."""
    rgb = np.asarray(_flat(image), dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _median_colourfulness(records: list[Record]) -> float:
    values = []
    for record in records:
        with Image.open(record.path) as image:
            values.append(colourfulness(image))
    return float(np.median(values)) if values else float("inf")


def _flat(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def _pictures(records: list[Record]) -> list[Image.Image]:
    out = []
    for record in records:
        with Image.open(record.path) as image:
            out.append(image.convert("RGBA"))
    return out
