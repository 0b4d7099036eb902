"""Outpainting: the sides it takes, the sizes it makes, the original kept and the seams blended."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keypaint.core.outpaint import Outpaint
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams
from keypaint.models.loaded import LoadedModel


@pytest.fixture(scope="module")
def init_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8))  # 40 wide, 48 high


def test_parse_and_text_round_trip() -> None:
    outpaint = Outpaint.parse("left:64, up:32")
    assert outpaint == Outpaint(left=64, up=32)
    assert Outpaint.parse(outpaint.text()) == outpaint
    assert Outpaint.parse("down:8,feather:4").text() == "down:8,feather:4"
    assert outpaint.extended(40, 48) == (104, 80)


@pytest.mark.parametrize(("text", "message"), [
    ("left64", "expected SIDE:PIXELS"),
    ("top:64", "expected SIDE:PIXELS"),
    ("left:12", "left must be a multiple of 8"),
    ("left:-8", "left must be within [0, 4096]"),
    ("left:8,left:16", "left is given twice"),
    ("right:a", "expected a whole number"),
    ("feather:8", "extend at least one side"),
])
def test_bad_sides_and_amounts_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidParams, match="outpaint") as err:
        Outpaint.parse(text)
    assert message in str(err.value)


def test_outpaint_needs_an_init_image_and_makes_its_own_mask() -> None:
    with pytest.raises(InvalidParams, match="needs an init image"):
        GenerationParams(prompt="a", outpaint=Outpaint(left=8)).validate()
    image = Image.new("RGB", (32, 32))
    with pytest.raises(InvalidParams, match="drop the mask"):
        GenerationParams(prompt="a", outpaint=Outpaint(left=8), init_image=image, mask=image).validate()


def test_canvas_mask_and_blend(init_image: Image.Image) -> None:
    outpaint = Outpaint(left=16, down=8, feather=4)
    canvas = outpaint.canvas(init_image, 56, 56)
    assert canvas.size == (56, 56)
    assert np.array_equal(np.asarray(canvas)[0:48, 16:56], np.asarray(init_image))  # the original, in place
    mask = np.asarray(outpaint.mask(56, 56))
    assert mask[:, :16].min() == 255 and mask[48:, :].min() == 255  # the new sides are repainted
    assert mask[:, 16:20].min() == 255 and mask[:44, 20:].max() == 0  # and 4 px of seam, no more
    painted = Image.new("RGB", (56, 56), (0, 0, 0))
    blended = np.asarray(outpaint.blend(painted, canvas), np.int16)
    original = np.asarray(canvas, np.int16)
    assert np.array_equal(blended[:44, 20:], original[:44, 20:])  # inside the seam: untouched
    assert blended[:, :16].max() == 0  # the new border: the painted picture
    # across the seam the painted share falls 4/5, 3/5, ... of the way, never a hard edge
    share = 1 - blended[:40, 16:20].astype(np.float32) / np.maximum(original[:40, 16:20], 1)
    ramp = np.median(share.reshape(-1, 4, 3).transpose(1, 0, 2).reshape(4, -1), axis=1)
    assert np.allclose(ramp, [0.8, 0.6, 0.4, 0.2], atol=0.02)


def test_the_painter_extends_keeps_and_blends(tiny_sd1: LoadedModel, init_image: Image.Image) -> None:
    painter = Painter(tiny_sd1)
    params = GenerationParams(prompt="apple", steps=2, seed=3, init_image=init_image, strength=1.0,
                              outpaint=Outpaint(left=16, up=8, feather=8))
    [result] = painter.generate(params)
    assert result.image.size == (56, 56) and (result.params.width, result.params.height) == (56, 56)
    assert result.params.mode == "outpaint"
    out, original = np.asarray(result.image, np.int16), np.asarray(init_image, np.int16)
    assert np.array_equal(out[8 + 8:, 16 + 8:], original[8:, 8:])  # the original beyond the seam, exactly
    assert np.abs(out[:8, 16:] - original[:1, :]).mean() > 5  # the new top is painted, not the edge repeated
    with pytest.raises(InvalidParams, match="no room"):
        painter.generate(GenerationParams(prompt="a", steps=2, seed=1, init_image=init_image, width=16,
                                          height=56, outpaint=Outpaint(left=16)))
