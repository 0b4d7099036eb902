"""Pictures for the provenance tests: one real tiny-model picture at 128 px (the built-in model's size)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from keypaint.core.painter import GeneratedImage, Painter
from keypaint.core.params import GenerationParams


@pytest.fixture(scope="module")
def generated(tiny_sd1) -> GeneratedImage:
    """A real `GeneratedImage` from the tiny SD 1.x model, 128 px, 2 steps."""
    params = GenerationParams(prompt="red apple, fruit", steps=2, width=128, height=128, seed=11)
    return Painter(tiny_sd1).generate(params)[0]


def emoji_like(seed: int, size: int = 128) -> Image.Image:
    """A flat-coloured picture on white, the hard case for a chroma watermark (clipping, flat areas)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 4, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([int(x), int(y), int(x + w), int(y + h)], fill=colour, outline=(30, 30, 30), width=2)
    return image
