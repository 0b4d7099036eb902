"""Every saved picture carries the marks, `verify_image` finds them, and edits are reported honestly."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from keypaint.errors import ImageError
from keypaint.outputs.metadata import read_metadata
from keypaint.outputs.results import save_generated
from keypaint.provenance.settings import DIGITAL_SOURCE_TYPE, ProvenanceSettings
from keypaint.provenance.verify import verify_bytes, verify_image
from keypaint.provenance.xmp import build_xmp


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_saved_pictures_carry_all_three_marks(generated, tmp_path: Path, fmt: str) -> None:
    path = save_generated(generated, tmp_path, format=fmt)  # the path the CLI and the server take
    assert path.suffix == {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[fmt]
    report = verify_image(path)
    assert report.metadata.status == "found"
    assert report.metadata.data["digital_source_type"] == DIGITAL_SOURCE_TYPE
    record = read_metadata(path).data["provenance"]
    assert record["ai_generated"] and record["disabled"] == [] and record["c2pa"] is True
    assert report.watermark.status == "found"
    assert report.watermark.data["picture_id"] == record["picture_id"]
    assert report.c2pa.status == "found" and report.c2pa.data["state"] == "Trusted"  # the local CA
    assert report.c2pa.data["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert report.c2pa.data["model"]["name"] == generated.model_name
    assert report.warnings == [] and report.marked
    assert json.loads(json.dumps(report.to_dict()))["watermark"]["status"] == "found"


def test_png_keeps_its_a1111_infotext_and_an_xmp_chunk(generated, tmp_path: Path) -> None:
    path = save_generated(generated, tmp_path)
    with Image.open(path) as image:
        assert "trainedAlgorithmicMedia" in image.text["XML:com.adobe.xmp"]
        assert image.text["parameters"].startswith("red apple, fruit\n")


def test_jpeg_has_exif_description_and_json_in_xmp(generated, tmp_path: Path) -> None:
    path = save_generated(generated, tmp_path, format="jpeg")
    with Image.open(path) as image:
        exif = image.getexif()
        assert "generative AI" in exif[0x010E] and exif[0x0131].startswith("keypaint")
    meta = read_metadata(path)
    assert meta.infotext is not None and meta.infotext.startswith("red apple, fruit")
    assert meta.data is not None and meta.data["params"]["seed"] == generated.seed


def test_stripped_metadata_is_reported_missing_not_an_error(generated, tmp_path: Path) -> None:
    path = save_generated(generated, tmp_path)
    stripped = tmp_path / "stripped.png"
    with Image.open(path) as image:
        image.convert("RGB").save(stripped)  # pixels only: what many upload pipelines do
    report = verify_image(stripped)
    assert report.metadata.status == "missing" and report.c2pa.status == "missing"
    assert report.watermark.status == "found"  # the mark in the pixels outlives the metadata
    assert report.marked


def test_changing_pixels_after_signing_is_reported_tampered(generated, tmp_path: Path) -> None:
    path = save_generated(generated, tmp_path)
    with Image.open(path) as image:
        edited = image.convert("RGB")
    edited.putpixel((5, 5), (0, 255, 0))
    forged = tmp_path / "forged.png"
    forged.write_bytes(_with_chunks_of(path.read_bytes(), edited))
    report = verify_image(forged)
    assert report.c2pa.status == "tampered"
    assert any("mismatch" in code for code in report.c2pa.data["failures"])
    assert report.metadata.status == "found"


def test_marks_turned_off_are_recorded_and_reported(generated, tmp_path: Path) -> None:
    path = save_generated(generated, tmp_path, provenance=ProvenanceSettings(watermark=False, c2pa=False))
    record = read_metadata(path).data["provenance"]
    assert record["disabled"] == ["watermark", "c2pa"] and record["watermark"] is None
    report = verify_image(path)
    assert report.disabled == ["watermark", "c2pa"]
    assert report.watermark.status == "missing" and "turned off by a setting" in report.watermark.detail
    assert report.c2pa.status == "missing" and "turned off by a setting" in report.c2pa.detail
    assert report.metadata.status == "found"  # the XMP "made by AI" field is always written


def test_remaking_a_picture_gives_the_same_pixels(generated, tmp_path: Path) -> None:
    """The watermark id comes from the recipe, so `generate --from` still reproduces pixel for pixel."""
    first = save_generated(generated, tmp_path)
    again = save_generated(generated, tmp_path)
    with Image.open(first) as a, Image.open(again) as b:
        assert a.tobytes() == b.tobytes()


def test_unreadable_files_raise_image_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ImageError):
        verify_image(text)
    with pytest.raises(ImageError):
        verify_image(tmp_path / "absent.png")
    with pytest.raises(ImageError):
        verify_bytes(b"\x89PNG\r\n\x1a\n broken")


def test_pictures_from_elsewhere_have_no_marks(tmp_path: Path) -> None:
    plain = tmp_path / "photo.jpg"
    Image.new("RGB", (96, 96), (90, 140, 200)).save(plain, quality=90)
    report = verify_image(plain)
    assert (report.metadata.status, report.watermark.status, report.c2pa.status) == ("missing",) * 3
    assert not report.marked


def test_a_camera_source_type_in_xmp_is_not_an_ai_mark(tmp_path: Path) -> None:
    camera = tmp_path / "camera.jpg"
    xmp = build_xmp("camera").replace("trainedAlgorithmicMedia", "digitalCapture")
    Image.new("RGB", (64, 64), (90, 140, 200)).save(camera, xmp=xmp.encode())
    report = verify_image(camera)
    assert report.metadata.status == "missing" and "digitalCapture" in report.metadata.detail


def _with_chunks_of(signed: bytes, image: Image.Image) -> bytes:
    """`image` re-encoded as PNG, carrying every ancillary chunk of `signed` (the C2PA manifest too)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    fresh = _chunks(buffer.getvalue())
    kept = [c for c in _chunks(signed) if c[0] not in (b"IHDR", b"IDAT", b"IEND")]
    ordered = [fresh[0], *kept, *[c for c in fresh[1:] if c[0] != b"IHDR"]]
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in ordered:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def test_formats_share_one_numbering_and_never_overwrite(generated, tmp_path: Path) -> None:
    names = [save_generated(generated, tmp_path, format=fmt).name for fmt in ("png", "jpeg", "webp", "png")]
    seed = generated.seed
    assert names == [f"00000-{seed}.png", f"00001-{seed}.jpg", f"00002-{seed}.webp", f"00003-{seed}.png"]
    assert not list(tmp_path.glob(".keypaint-*"))  # no temporary or claim files left behind


def test_an_unknown_format_is_refused_before_writing(generated, tmp_path: Path) -> None:
    from keypaint.errors import InvalidParams

    with pytest.raises(InvalidParams, match="format"):
        save_generated(generated, tmp_path, format="gif")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
