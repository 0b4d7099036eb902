"""How well keypaint's invisible watermark holds up, what it costs, and how it compares to the library's own.

    python benchmarks/provenance.py                 # the figures in docs/provenance.md
    python benchmarks/provenance.py --compare       # also the library's dwtDct / dwtDctSvd / rivaGan as-is
    python benchmarks/provenance.py --quick         # a few pictures, seconds (CI and tests run this)

Picture sets: 100 from the built-in model at 128 px (if its weights are installed; otherwise the table
says so and a stand-in of 100 flat emoji-like drawings on white at 128 px is measured instead), and 20 at
512 px from the tiny random-weight SD 1.x model. For each: the share of marked pictures in which the
watermark is detected (and its 32-bit id read correctly) as saved, after JPEG quality 75 (and 90, for
reference), after a 0.5x resize, after an 80% centre crop and after a screenshot-like PNG re-save; false
positives on the same pictures unmarked, with the highest detection score (z) any of them reached; PSNR
of marked vs unmarked; seconds added per picture by the watermark and by C2PA signing. Goals (issue 8):
>= 99% as saved, >= 90% after each transform (q90 aside), 0 false positives, PSNR >= 40 dB.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from PIL import Image, ImageDraw

from keypaint.provenance import watermark

Transform = Callable[[Image.Image], Image.Image]


def _jpeg(quality: int) -> Transform:
    def transform(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)  # Pillow's default 4:2:0 chroma, as most tools
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    return transform


def _half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def _crop80(image: Image.Image) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * 0.8), round(h * 0.8)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _png_resave(image: Image.Image) -> Image.Image:
    """What a screenshot tool does: RGBA pixels, no metadata, a fresh PNG."""
    buffer = io.BytesIO()
    image.convert("RGBA").save(buffer, format="PNG", optimize=True)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


TRANSFORMS: dict[str, Transform] = {
    "as saved": lambda image: image,
    "JPEG q75": _jpeg(75),
    "JPEG q90": _jpeg(90),  # not a goal: shows where a small picture's mark starts to survive JPEG
    "0.5x resize": _half,
    "80% crop": _crop80,
    "PNG re-save": _png_resave,
}


@dataclass
class Tally:
    """Results of one picture set."""

    name: str
    size: int
    detected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRANSFORMS, 0))
    id_read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRANSFORMS, 0))
    false_positives: int = 0
    # detection scores (z) of the unmarked pictures: as saved, and the best over the alignment search
    null_as_saved: list[float] = field(default_factory=list)
    null_search: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    embed_s: list[float] = field(default_factory=list)
    sign_s: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)
    count: int = 0


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


def measure(name: str, pictures: list[Image.Image], sign: bool) -> Tally:
    tally = Tally(name=name, size=pictures[0].width if pictures else 0, count=len(pictures))
    if not pictures:
        return tally
    for n, picture in enumerate(pictures):
        picture_id = watermark.picture_id_for({"set": name, "n": n})
        start = time.perf_counter()
        marked = watermark.embed(picture, picture_id)
        tally.embed_s.append(time.perf_counter() - start)
        tally.psnr.append(psnr(picture, marked))
        if sign:
            tally.sign_s.append(_sign_seconds(marked, picture_id))
        for label, transform in TRANSFORMS.items():
            start = time.perf_counter()
            found = watermark.detect(transform(marked))
            tally.detect_s.append(time.perf_counter() - start)
            tally.detected[label] += found.found
            tally.id_read[label] += found.picture_id == picture_id
        as_saved, searched = watermark.detect(picture, search=False), watermark.detect(picture)
        tally.false_positives += searched.found
        tally.null_as_saved.append(as_saved.score if as_saved.score is not None else float("nan"))
        tally.null_search.append(searched.score if searched.score is not None else float("nan"))
    return tally


def _sign_seconds(image: Image.Image, picture_id: str) -> float:
    from keypaint.provenance import credentials
    from keypaint.provenance.settings import ProvenanceSettings

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    definition = credentials.manifest(model_name="bench", model_hash=None, picture_id=picture_id, version="b")
    start = time.perf_counter()
    credentials.sign(buffer.getvalue(), "png", definition, ProvenanceSettings())
    return time.perf_counter() - start


def model_pictures(
    kind: str, count: int, size: int, steps: int, cache: Path | None = None
) -> tuple[list[Image.Image], str]:
    """`count` pictures from the built-in ("builtin") or tiny SD 1.x ("tiny") model, and what was used.

    With `cache`, pictures are kept there as PNG and reused: the built-in model takes ~1 min a picture
    on a busy 2-core CPU, and the measurement is what changes between runs.
    """
    from keypaint import Painter
    from keypaint.core.params import GenerationParams

    if kind == "builtin":
        from keypaint.builtin import load_builtin, weights_present

        if not weights_present():
            return [], "built-in model weights not installed"
        loaded = load_builtin()
        painter, label = Painter(loaded), f"built-in model (U-Net sha256 {(loaded.sha256 or '?')[:10]})"
    else:
        from keypaint.models.loaded import ModelKind
        from keypaint.models.tiny import tiny_model

        loaded = tiny_model(ModelKind.SD1)
        painter, label = Painter(loaded), "tiny SD 1.x (random weights)"
    prompts = [
        "red apple",
        "smiling face",
        "blue car",
        "green tree",
        "yellow star",
        "cat face",
        "pizza",
        "rocket",
        "heart",
        "sun with clouds",
    ]
    pictures = []
    for n in range(count):
        tag = f"{kind}-{(loaded.sha256 or 'random')[:10]}-{size}px-{steps}steps-{n}"
        kept = cache / f"{tag}.png" if cache else None
        if kept is not None and kept.is_file():
            pictures.append(Image.open(kept).convert("RGB"))
            continue
        params = GenerationParams(
            prompt=prompts[n % len(prompts)], steps=steps, width=size, height=size, seed=1000 + n
        )
        pictures.append(painter.generate(params)[0].image)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            pictures[-1].save(kept)
        if (n + 1) % 10 == 0:
            print(f"{kind}: {n + 1}/{count} pictures", file=sys.stderr, flush=True)
    return pictures, f"{label}, {steps} steps"


def emoji_like(seed: int, size: int) -> Image.Image:
    """A stand-in for the built-in model's emoji: flat filled shapes with outlines on white."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        x, y = rng.integers(0, size * 2 // 3, 2)
        w, h = rng.integers(size // 5, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse(
            [int(x), int(y), int(x + w), int(y + h)],
            fill=colour,
            outline=(25, 25, 25),
            width=max(1, size // 48),
        )
    return image


def compare_library(pictures: list[Image.Image], name: str) -> list[str]:
    """The library's methods as it ships them (its encode/decode, 32-bit payload, no alignment search)."""
    import cv2
    from imwatermark.dwtDctSvd import EmbedDwtDctSvd
    from imwatermark.maxDct import EmbedMaxDct

    bits = [int(b) for b in np.unpackbits(np.frombuffer(b"kp\x12\x34", np.uint8))]
    methods: dict[str, Callable[[], object]] = {
        "dwtDct": lambda: EmbedMaxDct(bits, wmLen=32),
        "dwtDctSvd": lambda: EmbedDwtDctSvd(bits, wmLen=32),
    }
    try:
        from imwatermark.rivaGan import RivaWatermark

        RivaWatermark.loadModel()  # its ONNX weights ship in the wheel; it needs onnxruntime
        methods["rivaGan"] = lambda: RivaWatermark(bits, 32)
    except ImportError:
        pass
    rows = []
    for method, make in methods.items():
        exact, errors = dict.fromkeys(TRANSFORMS, 0), dict.fromkeys(TRANSFORMS, 0)
        values, seconds = [], []
        for picture in pictures:
            bgr = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)
            start = time.perf_counter()
            out = make().encode(bgr)  # type: ignore[attr-defined]
            seconds.append(time.perf_counter() - start)
            marked = Image.fromarray(cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB))
            values.append(psnr(picture, marked))
            for label, transform in TRANSFORMS.items():
                seen = cv2.cvtColor(np.asarray(transform(marked)), cv2.COLOR_RGB2BGR)
                decoder = RivaWatermark([], 32) if method == "rivaGan" else type(make())([], wmLen=32)
                wrong = sum(int(a) != b for a, b in zip(decoder.decode(seen), bits, strict=True))
                exact[label] += wrong == 0
                errors[label] += wrong
        n = len(pictures)
        rates = " | ".join(f"{100 * exact[k] / n:.0f}% ({errors[k] / n:.1f})" for k in TRANSFORMS)
        cost = f"{np.mean(values):.1f} | {np.mean(seconds):.3f}"
        rows.append(f"| library {method}, {name} | {rates} | {cost} |")
    return rows


def table(tallies: list[Tally], notes: list[str]) -> str:
    head = " | ".join(TRANSFORMS)
    lines = [
        f"| pictures | {head} | false positives | PSNR dB (min) | + s watermark | + s C2PA | s detect |",
        "|" + "---|" * (len(TRANSFORMS) + 6),
    ]
    for t in tallies:
        if not t.count:
            continue
        rates = " | ".join(
            f"{100 * t.detected[k] / t.count:.0f}% ({100 * t.id_read[k] / t.count:.0f}%)" for k in TRANSFORMS
        )
        sign = f"{np.mean(t.sign_s):.3f}" if t.sign_s else "-"
        lines.append(
            f"| {t.name} ({t.count} x {t.size} px) | {rates} | {t.false_positives}/{t.count} | "
            f"{np.mean(t.psnr):.1f} ({np.min(t.psnr):.1f}) | {np.mean(t.embed_s):.3f} | {sign} | "
            f"{np.mean(t.detect_s):.2f} |"
        )
    lines.append("")
    lines.append("Cells: watermark detected (and its 32-bit id read correctly).")
    lines += [f"- {note}" for note in notes]
    for t in tallies:
        if t.null_search:
            lines.append(
                f"- {t.name}, unmarked: highest score (z) as saved {np.nanmax(t.null_as_saved):.2f} "
                f"(a mark needs {watermark.AS_SAVED_THRESHOLD:.2f}), over the alignment search "
                f"{np.nanmax(t.null_search):.2f} (a mark needs {watermark.SEARCH_THRESHOLD:.2f})"
            )
    lines.append(
        f"- the thresholds bound false positives at {watermark.FALSE_POSITIVE_BOUND:g} per picture read "
        "(Hoeffding and a union bound over every alignment tried: docs/provenance.md)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 + 2 pictures, 1 step: a smoke run")
    parser.add_argument("--compare", action="store_true", help="also measure the library's methods as-is")
    parser.add_argument("--count", type=int, default=100, help="pictures from the built-in model (128 px)")
    parser.add_argument("--count-standin", type=int, default=100, help="emoji-like drawings (128 px)")
    parser.add_argument("--count-512", type=int, default=20, help="pictures at 512 px (tiny model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=None, help="keep generated pictures here, reuse them")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.count_standin, args.count_512, args.steps = 0, 4, 1, 1
    notes: list[str] = []
    builtin, what = ([], "")
    if args.count:
        builtin, what = model_pictures("builtin", args.count, 128, args.steps, args.cache)
    notes.append(
        f"built-in set: {what}" if builtin else f"built-in set: not measured ({what or 'not asked for'})"
    )
    standin = [emoji_like(seed, 128) for seed in range(args.count_standin)]
    notes.append(
        "emoji-like stand-in: flat filled shapes with outlines on white, like the built-in "
        "model's emoji (generated in seconds, so it can be large)"
    )
    large, what_large = model_pictures("tiny", args.count_512, 512, min(args.steps, 4), args.cache)
    notes.append(f"512 px set: {what_large} (its pictures are structured noise, not photos)")
    tallies = [
        measure("built-in model", builtin, sign=True),
        measure("emoji-like stand-in", standin, sign=True),
        measure("tiny SD 1.x", large, sign=True),
    ]
    small = builtin or standin
    report = table(tallies, notes)
    if args.compare:
        head = " | ".join(TRANSFORMS)
        rows = [f"| method | {head} | PSNR dB | s embed |", "|" + "---|" * (len(TRANSFORMS) + 3)]
        rows += compare_library(small[:20], f"{small[0].width} px") + compare_library(large[:5], "512 px")
        title = (
            "The library's methods as shipped, its own decoder: exact 32-bit payload "
            "(mean bit errors of 32; 16 is chance):"
        )
        report += f"\n\n{title}\n" + "\n".join(rows)
    print(report)
    return report


if __name__ == "__main__":
    main()
