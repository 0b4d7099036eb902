"""Same seed, one thing changed: samplers x steps, and guidance scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.explain.compare import compare_samplers, guidance_strip, save_guidance_strip, save_sampler_grid


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, np.int16)


def test_sampler_grid(painter: Painter, tmp_path: Path) -> None:
    samplers, counts = [Sampler.DDPM, Sampler.DDIM], [2, 3]
    params, rows = compare_samplers(painter, GenerationParams(prompt="apple", seed=-1), samplers, counts)
    assert params.seed >= 0 and len(rows) == 2 and all(len(row) == 2 for row in rows)
    alone = GenerationParams(prompt="apple", seed=params.seed, sampler=Sampler.DDIM, steps=3)
    [ddim3] = painter.generate(alone)
    assert np.array_equal(px(rows[1][1]), px(ddim3.image))
    assert np.abs(px(rows[0][1]) - px(rows[1][1])).mean() > 1  # ancestral DDPM differs from DDIM
    with Image.open(save_sampler_grid(params, samplers, counts, rows, tmp_path / "s.png")) as image:
        assert image.format == "PNG"


def test_guidance_strip(painter: Painter, tmp_path: Path) -> None:
    params = GenerationParams(prompt="apple", negative_prompt="pear", seed=3, steps=2)
    resolved, images = guidance_strip(painter, params, [1.0, 9.0])
    assert resolved.seed == 3 and len(images) == 2
    assert np.abs(px(images[0]) - px(images[1])).mean() > 0.5
    with Image.open(save_guidance_strip(resolved, [1.0, 9.0], images, tmp_path / "g.png")) as image:
        assert image.format == "PNG"


def test_bad_scales_and_steps(painter: Painter) -> None:
    params = GenerationParams(prompt="apple", seed=3, steps=2)
    with pytest.raises(InvalidParams, match="guidance_scale"):
        guidance_strip(painter, params, [7.0, -1.0])
    with pytest.raises(InvalidParams, match="steps"):
        compare_samplers(painter, params, [Sampler.DDIM], [0, 2])
