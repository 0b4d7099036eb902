"""A tiny captioned picture folder, made fresh for each test: real PNGs and a real metadata.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (240, 200, 20)}
SHAPES = ("circle", "square")


def make_folder(root: Path, size: int = 32, heldout: bool = True) -> Path:
    """root/train (8 pictures) and root/heldout (2), as `keypaint data emoji` lays them out."""
    splits = {"train": [(c, s) for c in COLOURS for s in SHAPES],
              "heldout": [("red", "circle"), ("blue", "square")]}
    for split, items in splits.items():
        if split == "heldout" and not heldout:
            continue
        folder = root / split
        folder.mkdir(parents=True)
        rows = []
        for colour, shape in items:
            image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
            draw = ImageDraw.Draw(image)
            box = (size // 6, size // 6, size - size // 6, size - size // 6)
            (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=(*COLOURS[colour], 255))
            name = f"{colour}_{shape}.png"
            image.save(folder / name)
            rows.append({"file_name": name, "text": f"{colour} {shape}, {colour}, {shape}, test style",
                         "label": f"{colour} {shape}", "tags": [colour, shape], "style": "test"})
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "data")
