"""The invisible watermark: round trips, what it survives, what it must not find, and the library's view."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from imwatermark.dwtDctSvd import EmbedDwtDctSvd
from PIL import Image

from keypaint.provenance import watermark
from tests.provenance.conftest import emoji_like


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


@pytest.mark.parametrize("size", [128, 256])
def test_round_trip_reads_keypaint_and_the_id(size: int) -> None:
    original = emoji_like(1, size)
    marked = watermark.embed(original, "c0ffee42")
    found = watermark.detect(marked)
    assert found.found and found.picture_id == "c0ffee42" and found.magic_errors == 0
    assert found.alignment is not None and found.alignment.startswith("as saved")
    assert _psnr(original, marked) > 39


def test_the_librarys_own_decoder_reads_our_mark() -> None:
    """Embedding is the library's dwtDctSvd: its decoder (which needs 256x256+) reads the luma mark."""
    marked = watermark.embed(emoji_like(2, 256), "0badf00d")
    bgr = cv2.cvtColor(np.asarray(marked), cv2.COLOR_RGB2BGR)
    step, offset = watermark.CHANNELS[0]
    assert offset == 0  # the library reads uint8 luma as is
    bits = EmbedDwtDctSvd([], wmLen=watermark.PAYLOAD_BITS, scales=[step, 0, 0]).decode(bgr)
    assert [int(b) for b in bits] == watermark.payload_bits("0badf00d")


def test_unmarked_pictures_are_not_detected(generated) -> None:
    blank = Image.new("RGB", (128, 128), "white")
    for picture in (generated.image, emoji_like(3), emoji_like(4, 256), blank):
        assert not watermark.detect(picture).found


def test_survives_png_resave_jpeg_crop_and_halving() -> None:
    marked = watermark.embed(emoji_like(5), "12345678")
    buffer = io.BytesIO()
    marked.save(buffer, format="PNG")
    assert watermark.detect(Image.open(buffer)).picture_id == "12345678"
    buffer = io.BytesIO()
    marked.save(buffer, format="JPEG", quality=75)
    assert watermark.detect(Image.open(buffer)).found
    cropped = marked.crop((13, 13, 115, 115))  # an 80% centre crop, off the 8 px grid
    assert watermark.detect(cropped).found
    assert watermark.detect(marked.resize((64, 64), Image.Resampling.LANCZOS)).found


def test_the_id_follows_the_recipe_not_the_clock() -> None:
    recipe = {"params": {"prompt": "apple", "seed": 1}, "model": {"name": "m", "sha256": "ab"}}
    assert watermark.picture_id_for(recipe) == watermark.picture_id_for(dict(recipe))
    assert watermark.picture_id_for({**recipe, "params": {"prompt": "apple", "seed": 2}}) != \
        watermark.picture_id_for(recipe)


def test_payload_is_keypaint_the_id_and_a_check() -> None:
    bits = watermark.payload_bits("00000001")
    assert len(bits) == watermark.PAYLOAD_BITS == 103
    assert bytes(np.packbits(bits[:64])) == b"keypaint"
    assert bits[64:96] == [0] * 31 + [1]
