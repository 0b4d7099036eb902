"""Does the built-in sketch control (`keypaint-sketch`) make the built-in model follow a sketch, and at what
cost in keyword fidelity and seconds?

    OMP_NUM_THREADS=2 python benchmarks/sketch_control.py --data /data/emoji --names 64

For each of the first N held-out (label, style) pairs of DATA/heldout (as `keypaint eval` picks them) whose
real picture gives a sketch (at least 32 stroke pixels; flat bright emoji give none), the sketch is made
with keypaint's scribble preprocessor (white strokes on black, 128 px), inverted to dark strokes on white
as a person draws, and the pair's prompt is painted with the same seed twice through the Painter at its
defaults (DPM++ 2M Karras, 20 steps, CFG 7): without control, and with the sketch as control image,
preprocessor scribble, and no control model named (the built-in sketch control). Side by side:

- follows: the mean distance in pixels from the sketch's stroke pixels to the nearest edge of the painted
  picture (OpenCV Canny 100/200, then a distance transform); goal: with control <= 0.5 x without;
- fidelity: the scorer's top-1/top-5 retrieval of the asked label among the held-out labels (as `keypaint
  eval` ranks them); goal: with control >= 0.9 x without;
- seconds per picture on this machine (wall, and the process's CPU seconds, after a warm-up picture);
  goal <= 1.5 s with control. On a shared CPU set OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it: no spinning threads on a busy CPU
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

MISSING_EDGES = 128.0  # a picture without a single edge is as far from the sketch as it can be
MIN_STROKES = 32  # stroke pixels a sketch needs to be followed (flat bright emoji give none at threshold 32)


def sketch_of(real: Image.Image, size: int) -> tuple[Image.Image, np.ndarray]:
    """(the sketch a person would give: dark strokes on white, its strokes as a boolean mask)."""
    from keypaint.core.control import ControlUnit, Preprocess
    from keypaint.core.control_maps import control_map

    lines = control_map(ControlUnit("sketch", image=real, preprocess=Preprocess.SCRIBBLE), size, size).image
    strokes = np.asarray(lines.convert("L")) > 127
    return ImageOps.invert(lines.convert("RGB")), strokes


def stroke_distance(picture: Image.Image, strokes: np.ndarray) -> float:
    """Mean distance (px) from the stroke pixels to the nearest Canny edge of `picture`."""
    gray = cv2.cvtColor(np.asarray(picture.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 100, 200)
    if not edges.any():
        return MISSING_EDGES
    distance = cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 3)
    return float(distance[strokes].mean())


def paint(painter, prompts: list[str], seed: int, sketches: list[Image.Image] | None, weight: float = 1.0
          ) -> tuple[list[Image.Image], float, float]:
    """One picture per prompt (seed + i), with its sketch if given; mean wall and CPU seconds per picture
    after one warm-up picture."""
    from keypaint.builtin import SKETCH
    from keypaint.core.control import ControlUnit, Preprocess
    from keypaint.core.params import GenerationParams

    def params(i: int) -> GenerationParams:
        units = () if sketches is None else (
            ControlUnit(SKETCH, image=sketches[i], preprocess=Preprocess.SCRIBBLE, weight=weight),)
        return GenerationParams(prompt=prompts[i], seed=seed + i, control_units=units)

    painter.generate(params(0))  # loads the control model, warms the caches
    images, start, cpu = [], time.perf_counter(), time.process_time()
    for i in range(len(prompts)):
        images.append(painter.generate(params(i))[0].image)
    return images, (time.perf_counter() - start) / len(prompts), (time.process_time() - cpu) / len(prompts)


def run(args: argparse.Namespace) -> dict:
    from keypaint import Painter
    from keypaint.data.folder import load_folder
    from keypaint.scorer.evaluate import heldout_pairs, real_pictures, score_pictures
    from keypaint.scorer.model import Scorer

    args.out.mkdir(parents=True, exist_ok=True)
    painter = Painter.load(None, device="cpu", dtype="fp32", home=args.out / "home")
    size = painter.native_size
    pairs = heldout_pairs(load_folder(args.data / "heldout", check_images=False))
    real = real_pictures(pairs, size)
    drawn = [(pair, picture, *sketch_of(picture, size)) for pair, picture in zip(pairs, real, strict=True)]
    drawn = [row for row in drawn if row[3].sum() >= MIN_STROKES][: args.names]  # pairs with a sketch
    pairs, real, sketches, strokes = (list(column) for column in zip(*drawn, strict=True))
    prompts = [pair.prompt for pair in pairs]
    results: dict = {"threads": torch.get_num_threads(), "pictures": len(pairs), "size": size,
                     "weight": args.weight, "modes": {}}
    pictures = {}
    for name, given in (("plain", None), ("sketch", list(sketches))):
        pictures[name], seconds, cpu = paint(painter, prompts, args.seed, given, args.weight)
        distances = [stroke_distance(p, s) for p, s in zip(pictures[name], strokes, strict=True)]
        results["modes"][name] = {"seconds_per_picture": round(seconds, 3),
                                  "cpu_s_per_picture": round(cpu, 3),
                                  "stroke_to_edge_px": round(float(np.mean(distances)), 3)}
    scorer = Scorer.load(None, device="cpu")
    labels = sorted({p.label for p in pairs})
    for name, images in pictures.items():
        scores = score_pictures(scorer, images, real, [p.label for p in pairs], labels)
        results["modes"][name].update(top1=scores["generated"]["top1"], top5=scores["generated"]["top5"])
        results["real"] = scores["real"]
    plain, sketch = results["modes"]["plain"], results["modes"]["sketch"]
    results["distance_ratio"] = round(sketch["stroke_to_edge_px"] / plain["stroke_to_edge_px"], 3)
    results["top1_ratio"] = round(sketch["top1"] / plain["top1"], 3) if plain["top1"] else None
    results["top5_ratio"] = round(sketch["top5"] / plain["top5"], 3) if plain["top5"] else None
    print(f"{'':8} {'stroke->edge px':>16} {'top-1':>7} {'top-5':>7} {'s/picture':>10} {'CPU-s':>7}")
    for name, row in results["modes"].items():
        print(f"{name:8} {row['stroke_to_edge_px']:16.2f} {row['top1']:7.3f} {row['top5']:7.3f} "
              f"{row['seconds_per_picture']:10.3f} {row['cpu_s_per_picture']:7.3f}")
    print(f"distance ratio {results['distance_ratio']} (goal <= 0.5), top-1 ratio {results['top1_ratio']}, "
          f"top-5 ratio {results['top5_ratio']} (goal >= 0.9); real top-5 {results['real']['top5']:.3f}")
    sheet = Image.new("RGB", (96 * min(12, len(pairs)), 96 * 4), "white")
    for c in range(min(12, len(pairs))):
        for r, image in enumerate((real[c], sketches[c], pictures["plain"][c], pictures["sketch"][c])):
            sheet.paste(image.convert("RGB").resize((96, 96)), (96 * c, 96 * r))
    sheet.save(args.out / "samples.png")
    (args.out / "sketch_control.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with heldout/")
    parser.add_argument("--names", type=int, default=64, help="held-out pairs to paint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight", type=float, default=1.0, help="the sketch control's weight (0..2)")
    parser.add_argument("--out", type=Path, default=Path("outputs/sketch-control"))
    run(parser.parse_args())


if __name__ == "__main__":
    main()
