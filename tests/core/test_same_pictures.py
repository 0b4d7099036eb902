"""Issue 17's promise: the refactor changed no picture. Every sampler on every path paints what it painted
before (txt2img, img2img, inpainting with a plain and with an inpainting model, SDXL).

`same_pictures.json` holds each picture's 16x16 RGB box-averaged fingerprint as painted by commit dfc9181,
the last before issue 17's refactor (made with `paint_all` below, run against that commit's `src`). The
pictures agree to the value there; the tolerance of 2/255 only absorbs floating-point differences of
another CPU.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model

REFERENCE = Path(__file__).with_name("same_pictures.json")


def fingerprint(image: Image.Image) -> list[int]:
    return [int(v) for v in np.asarray(image.convert("RGB").resize((16, 16), Image.BOX)).ravel()]


def paint_all() -> dict[str, list[int]]:
    """Every sampler x path at 64 px, 4 steps, fixed seed: fingerprints by "sampler | model path"."""
    init = Image.linear_gradient("L").convert("RGB").resize((64, 64))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    painters = {"sd1": Painter(tiny_model(ModelKind.SD1)), "sdxl": Painter(tiny_model(ModelKind.SDXL)),
                "sd1-inpainting": Painter(tiny_model(ModelKind.SD1, inpainting=True))}
    out: dict[str, list[int]] = {}
    for sampler in Sampler:
        base = GenerationParams(prompt="red apple, (shiny:1.2)", negative_prompt="blurry", steps=4, width=64,
                                height=64, seed=7, sampler=sampler,
                                guidance_scale=1.5 if sampler is Sampler.LCM else 6.0)
        cases = {
            "sd1 txt2img": ("sd1", base),
            "sd1 img2img": ("sd1", replace(base, init_image=init, strength=0.75)),
            "sd1 inpaint": ("sd1", replace(base, init_image=init, mask=mask, strength=0.9)),
            "sd1-inpainting inpaint": ("sd1-inpainting",
                                       replace(base, init_image=init, mask=mask, strength=1.0)),
            "sdxl txt2img": ("sdxl", base),
        }
        for name, (model, params) in cases.items():
            [result] = painters[model].generate(params)
            out[f"{sampler.value} | {name}"] = fingerprint(result.image)
    return out


@pytest.fixture(scope="module")
def painted() -> dict[str, list[int]]:
    return paint_all()


def test_every_sampler_and_path_paints_what_it_painted_before_the_refactor(painted) -> None:
    reference = json.loads(REFERENCE.read_text())["pictures"]
    assert sorted(painted) == sorted(reference)  # 11 samplers x 5 paths
    differ = {key: int(np.abs(np.array(painted[key]) - np.array(reference[key])).max()) for key in reference}
    assert max(differ.values()) <= 2, {k: v for k, v in differ.items() if v > 2}


def test_the_fingerprints_tell_pictures_apart(painted) -> None:
    """A fingerprint that every picture shares would pass the test above whatever was painted."""
    values = [tuple(v) for v in painted.values()]
    assert len(set(values)) >= 0.9 * len(values)
    assert all(np.std(v) > 5 for v in values)  # not a flat grey
