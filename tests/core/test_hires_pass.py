"""The hires fix on a tiny real model: 32 px painted, upscaled (latents, Lanczos) and painted at 64 px."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keypaint.core.hires import HiresOptions
from keypaint.core.hires_pass import upscale_latents, upscale_picture
from keypaint.core.painter import Painter, StepEvent
from keypaint.core.params import GenerationParams
from keypaint.models.loaded import LoadedModel

SMALL = GenerationParams(prompt="red apple", steps=2, seed=4, width=32, height=32)


@pytest.fixture(scope="module")
def painter(tiny_sd1: LoadedModel) -> Painter:
    return Painter(tiny_sd1)


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos", "Latent (nearest-exact)"])
def test_the_second_pass_paints_the_upscaled_size(painter: Painter, upscaler: str) -> None:
    events: list[StepEvent] = []
    hires = HiresOptions(scale=2, upscaler=upscaler, steps=4, strength=0.5)
    [result] = painter.generate(GenerationParams(prompt="red apple", steps=2, seed=4, width=32, height=32,
                                                 hires=hires), on_step=events.append)
    assert result.image.size == (64, 64)
    assert (result.params.width, result.params.height) == (32, 32)  # the request: A1111's "Size" is the first
    # 2 steps at 32 px, then 4 x 0.5 at 64 px, counted as one run
    assert [(e.step, e.steps) for e in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [tuple(e.latents.shape[-2:]) for e in events] == [(4, 4), (4, 4), (8, 8), (8, 8)]
    if upscaler == "Latent":
        [again] = painter.generate(result.params)
        assert np.array_equal(np.asarray(again.image), np.asarray(result.image))  # the seed makes both passes


def test_the_second_pass_changes_the_upscaled_picture_by_its_strength(painter: Painter) -> None:
    [small] = painter.generate(SMALL)
    plain = np.asarray(small.image.resize((64, 64)), np.float32)
    changes = []
    for strength in (0.3, 1.0):
        hires = HiresOptions(scale=2, upscaler="Lanczos", steps=4, strength=strength)
        [big] = painter.generate(GenerationParams(**{**SMALL.__dict__, "hires": hires}))
        changes.append(np.abs(np.asarray(big.image, np.float32) - plain).mean())
    assert 0 < changes[0] < changes[1]


def test_resize_to_both_sides_crops_the_centre(painter: Painter) -> None:
    hires = HiresOptions(resize_x=64, resize_y=32, upscaler="Lanczos", strength=0.5)
    [result] = painter.generate(GenerationParams(prompt="a", steps=2, seed=1, width=32, height=32,
                                                 hires=hires))
    assert result.image.size == (64, 32)


def test_latents_and_pictures_are_upscaled_then_cropped() -> None:
    latents = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    hires = HiresOptions(resize_x=64, resize_y=32, upscaler="Latent (nearest)")
    cover, final = hires.target(32, 32)
    up = upscale_latents(latents, hires, cover, final)
    assert up.shape == (1, 1, 4, 8)
    assert torch.equal(up[0, 0, 0], latents[0, 0, 1].repeat_interleave(2))  # the middle rows kept
    from PIL import Image

    picture = Image.new("RGB", (32, 32), (200, 10, 10))
    big = upscale_picture(picture, HiresOptions(resize_x=64, resize_y=32, upscaler="Lanczos"), cover, final)
    assert big.size == (64, 32) and big.getpixel((10, 10)) == (200, 10, 10)
