"""Tiny real data for scorer tests: coloured squares on white, captioned like the emoji folder."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from keypaint.data.captions import emoji_caption
from keypaint.scorer.model import ScorerConfig
from keypaint.scorer.train import train_scorer

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "black": (20, 20, 20),
}
STYLES = ("flat", "outline")


def make_squares(folder: Path, per_colour: int = 6, size: int = 32, seed: int = 0) -> Path:
    """`per_colour` squares of each colour and style at random places and sizes, plus metadata.jsonl."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, rgb in COLOURS.items():
        for style in STYLES:
            for i in range(per_colour):
                side = rng.randint(size // 3, size * 3 // 4)
                x, y = rng.randint(0, size - side), rng.randint(0, size - side)
                image = Image.new("RGB", (size, size), "white")
                draw = ImageDraw.Draw(image)
                box = (x, y, x + side - 1, y + side - 1)
                if style == "flat":
                    draw.rectangle(box, fill=rgb)
                else:
                    draw.rectangle(box, outline=rgb, width=max(2, side // 5))
                file_name = f"{style}_{name}_{i}.png"
                image.save(folder / file_name)
                label, tags = f"{name} square", [name, "square", "shape"]
                rows.append(
                    {
                        "file_name": file_name,
                        "text": emoji_caption(label, tags, style),
                        "label": label,
                        "tags": tags,
                        "style": style,
                        "hexcode": f"{i:04X}",
                    }
                )
    with (folder / "metadata.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return folder


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_squares(tmp_path_factory.mktemp("squares") / "train")


@pytest.fixture(scope="session")
def squares_heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_squares(tmp_path_factory.mktemp("squares") / "heldout", per_colour=2, seed=1)


TOY_MODEL = ScorerConfig(image_size=32, widths=(16, 32, 64), blocks=(1, 1, 1), embed_dim=64, text_hidden=128)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Tiny convnets train fastest on one thread, and busy CI machines stop oversubscribing."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def trained(squares: Path, squares_heldout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy scorer trained for real on the squares (about 5 s on one CPU thread)."""
    out = tmp_path_factory.mktemp("scorer")
    with torch_threads(1):
        train_scorer(
            squares,
            out,
            steps=150,
            batch_size=32,
            lr=3e-3,
            model=TOY_MODEL,
            device="cpu",
            eval_dir=squares_heldout,
            checkpoint_every=150,
            log_every=10,
            progress=False,
        )
    return out
