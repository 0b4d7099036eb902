"""keypaint's pictures as other programs read them: A1111's parser, sd-parsers, exiftool -validate."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, TiffImagePlugin, TiffTags
from sd_parsers import ParserManager

from keypaint.core.painter import GeneratedImage, Painter
from keypaint.core.params import GenerationParams
from keypaint.outputs.exif import exif_block
from keypaint.outputs.infotext import parse_infotext
from keypaint.outputs.metadata import read_metadata
from keypaint.outputs.results import save_generated

KEYWORDS_USED = "red apple, apple, (diet:1.2), fruit"  # commas and a colon: what splitting readers cut


@pytest.fixture(scope="module")
def result(tiny_sd1) -> GeneratedImage:
    [painted] = Painter(tiny_sd1).generate(GenerationParams(prompt="red apple", steps=2, seed=3))
    return dataclasses.replace(painted, extra={"Keywords used": KEYWORDS_USED})


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_sd_parsers_and_a1111s_parser_read_keywords_used_whole(result: GeneratedImage, tmp_path: Path,
                                                               fmt: str) -> None:
    path = save_generated(result, tmp_path, format=fmt)  # type: ignore[arg-type]
    infotext = read_metadata(path).infotext
    assert infotext is not None
    assert parse_infotext(infotext)["Keywords used"] == KEYWORDS_USED  # A1111's regex + json unquote
    info = ParserManager().parse(path)
    assert info is not None and info.full_prompt == "red apple"
    assert info.metadata["Version"].startswith("keypaint")  # the fields after it are not shifted either
    read = info.metadata["Keywords used"]
    assert read.startswith('"') and read.endswith('"')  # one piece: the JSON string, escapes and all
    assert parse_infotext(f"x\nSteps: 1, Seed: 1, Size: 8x8, Keywords used: {read}")["Keywords used"] \
        == KEYWORDS_USED


def test_user_comment_has_the_undefined_type_and_a_charset_code() -> None:
    block = exif_block("cat, dog\nSteps: 1", size=(64, 32), jpeg=True, description="AI", software="kp")
    assert block.startswith(b"Exif\0\0MM")
    ifd0 = TiffImagePlugin.ImageFileDirectory_v2(block[6:14])
    ifd0.load(_at(block, 8))
    exif = TiffImagePlugin.ImageFileDirectory_v2(block[6:14])
    exif.load(_at(block, ifd0[0x8769]))
    assert exif.tagtype[0x9286] == TiffTags.UNDEFINED
    assert exif[0x9286] == b"UNICODE\0" + "cat, dog\nSteps: 1".encode("utf-16-be")
    assert exif[0x9000] == b"0232" and (exif[0xA002], exif[0xA003]) == (64, 32)


def _at(block: bytes, offset: int) -> io.BytesIO:
    """The TIFF structure (after "Exif\\0\\0") positioned at an IFD offset."""
    stream = io.BytesIO(block[6:])
    stream.seek(offset)
    return stream


@pytest.mark.skipif(shutil.which("exiftool") is None,
                    reason="exiftool is not installed (Debian: apt-get install libimage-exiftool-perl)")
@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_exiftool_validate_finds_nothing_wrong(result: GeneratedImage, tmp_path: Path, fmt: str) -> None:
    path = save_generated(result, tmp_path, format=fmt)  # type: ignore[arg-type]
    out = subprocess.run(["exiftool", "-validate", "-warning", "-a", "-UserComment", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "Validate                        : OK" in out, out
    assert "Keywords used" in out and "red apple" in out  # UTF-16 read in the file's byte order
    with Image.open(path) as image:
        assert image.size == result.image.size
