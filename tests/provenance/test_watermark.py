"""The invisible watermark: round trips, what it survives, what it must not find, and the library's view."""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from imwatermark.dwtDctSvd import EmbedDwtDctSvd
from PIL import Image

from keypaint.builtin import weights_present
from keypaint.provenance import watermark
from keypaint.provenance import watermark_layout as layout
from tests.provenance.conftest import emoji_like

SCHEME_1_PICTURE = Path(__file__).with_name("scheme1-5c4e3e01.png")  # a built-in picture, marked by scheme 1


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)  # Pillow's default 4:2:0 chroma
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.fixture(scope="module")
def builtin_picture() -> Image.Image:
    """A real 128 px picture from the built-in model, seeded (10 steps: a few seconds)."""
    if not weights_present():
        pytest.skip("built-in weights not installed")
    from keypaint.builtin import load_builtin
    from keypaint.core.painter import Painter
    from keypaint.core.params import GenerationParams

    params = GenerationParams(prompt="smiling face", steps=10, width=128, height=128, seed=3)
    return Painter(load_builtin()).generate(params)[0].image


@pytest.mark.parametrize("size", [128, 256])
def test_round_trip_reads_keypaint_and_the_id(size: int) -> None:
    original = emoji_like(1, size)
    marked = watermark.embed(original, "c0ffee42")
    found = watermark.detect(marked)
    assert found.found and found.picture_id == "c0ffee42" and found.magic_errors == 0
    assert found.alignment == "as saved" and found.scheme == watermark.SCHEME == 2
    assert found.score is not None and found.score > 2 * watermark.AS_SAVED_THRESHOLD
    assert _psnr(original, marked) > 40


def test_the_librarys_own_decoder_reads_our_luma_blocks() -> None:
    """Embedding is the library's dwtDctSvd: its decoder (which needs 256x256+), given one "payload bit" per
    block, reads back the luma blocks' bits (its uint8 YUV rounds a few blocks off their bit)."""
    marked = watermark.embed(emoji_like(2, 256), "0badf00d")
    bgr = cv2.cvtColor(np.asarray(marked), cv2.COLOR_RGB2BGR)
    step, offset = watermark.CHANNELS[0]
    assert offset == 0  # the library reads uint8 luma as is
    bits = EmbedDwtDctSvd([], wmLen=32 * 32, scales=[step, 0, 0]).decode(bgr)
    luma, _ = layout.block_bits("0badf00d", 32, 32)
    assert np.mean(np.asarray(bits, int) == luma.ravel()) > 0.98


def test_unmarked_pictures_are_not_detected(generated) -> None:
    blank = Image.new("RGB", (128, 128), "white")
    for picture in (generated.image, emoji_like(3), emoji_like(4, 256), blank):
        found = watermark.detect(picture)
        assert not found.found and found.picture_id is None
        assert found.score is not None and found.score < watermark.SEARCH_THRESHOLD


def test_survives_png_resave_jpeg_crop_and_halving() -> None:
    marked = watermark.embed(emoji_like(5), "12345678")
    buffer = io.BytesIO()
    marked.save(buffer, format="PNG")
    assert watermark.detect(Image.open(buffer)).picture_id == "12345678"
    assert watermark.detect(_jpeg(marked, 75)).found
    cropped = watermark.detect(marked.crop((13, 13, 115, 115)))  # an 80% centre crop, off the 8 px grid
    assert cropped.found and cropped.picture_id == "12345678"
    assert cropped.alignment == "scale 1x, grid +3+3, phase 2,2"  # the crop's first whole block: (2, 2)
    halved = watermark.detect(marked.resize((64, 64), Image.Resampling.LANCZOS))
    assert halved.found and halved.alignment is not None and halved.alignment.startswith("scale 2x")


def test_a_built_in_picture_is_still_detected_after_jpeg_q75(builtin_picture: Image.Image) -> None:
    """The issue's hard case: a textured 128 px picture re-encoded at JPEG quality 75 (scheme 1: 19%)."""
    marked = watermark.embed(builtin_picture, "c0ffee42")
    assert _psnr(builtin_picture, marked) > 40
    found = watermark.detect(_jpeg(marked, 75))
    assert found.found and found.alignment == "as saved" and found.scheme == 2
    assert not watermark.detect(_jpeg(builtin_picture, 75)).found


def test_a_scheme_1_picture_still_reads() -> None:
    found = watermark.detect(Image.open(SCHEME_1_PICTURE))
    assert found.found and found.scheme == 1 and found.picture_id == "5c4e3e01" and found.magic_errors == 0


def test_thresholds_spend_the_false_positive_budget() -> None:
    """Hoeffding: P(z >= t) <= exp(-t**2 / 2) per test; 1 test as saved, 2 x 64 x 48 x 48 in the search."""
    as_saved = math.exp(-(watermark.AS_SAVED_THRESHOLD**2) / 2)
    search = 2 * 64 * 48 * 48 * math.exp(-(watermark.SEARCH_THRESHOLD**2) / 2)
    assert as_saved + search == pytest.approx(watermark.FALSE_POSITIVE_BOUND)


def test_chance_votes_score_within_the_bound() -> None:
    """z of random votes (a stand-in for an unmarked picture) exceeds t no more often than exp(-t**2 / 2)."""
    rng = np.random.default_rng(0)
    scores = np.array(
        [watermark._z_map(watermark._fold(rng.uniform(-1, 1, (16, 16)) ** 3))[0, 0] for _ in range(4000)]
    )
    for t in (1.0, 2.0, 3.0):
        assert np.mean(scores >= t) <= math.exp(-(t**2) / 2)
    assert abs(np.mean(scores)) < 0.05 and 0.9 < np.std(scores) < 1.1  # z is a standard score


def test_payload_is_keypaint_the_id_and_a_check() -> None:
    bits = watermark.payload_bits("00000001")
    assert len(bits) == watermark.PAYLOAD_BITS == 112
    assert bytes(np.packbits(bits[:64])) == b"keypaint"
    assert bits[64:96] == [0] * 31 + [1]
    assert int.from_bytes(np.packbits(bits[96:]).tobytes(), "big") == layout.check_of(1)


def test_the_id_follows_the_recipe_not_the_clock() -> None:
    recipe = {"params": {"prompt": "apple", "seed": 1}, "model": {"name": "m", "sha256": "ab"}}
    assert watermark.picture_id_for(recipe) == watermark.picture_id_for(dict(recipe))
    assert watermark.picture_id_for(
        {**recipe, "params": {"prompt": "apple", "seed": 2}}
    ) != watermark.picture_id_for(recipe)


def test_a_picture_smaller_than_a_block_is_refused() -> None:
    with pytest.raises(ValueError, match="too small to watermark"):
        watermark.embed(Image.new("RGB", (6, 64)), "00000000")
