"""Saving pictures so that each one carries how it was made (`outputs.metadata` reads that back).

A saved PNG holds two text chunks: `parameters` (A1111's infotext, which A1111, Forge, Civitai and image
viewers show) and `keypaint` (JSON with everything needed to make the same picture again), plus an XMP
packet when the caller gives one (the "made by AI" marks, see keypaint.provenance). JPEG and WebP files
carry the infotext in EXIF UserComment (where A1111 writes it, see `outputs.exif`) and the JSON inside
the XMP packet. Files are numbered the way A1111 numbers them (`00000-<seed>.png`) and never overwrite
anything (`outputs.files` writes them).
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from PIL import Image, PngImagePlugin

from keypaint.errors import InvalidParams, OutputError
from keypaint.outputs.exif import exif_block
from keypaint.outputs.files import write_numbered
from keypaint.outputs.metadata import PNG_INFOTEXT_KEY, PNG_METADATA_KEY

PNG_XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword Adobe's XMP spec gives for PNG

ImageFormat = Literal["png", "jpeg", "webp"]
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
JPEG_QUALITY = 95  # with full-resolution chroma: the invisible watermark lives in chroma and survives
# lossy WebP always halves chroma resolution, which erases the watermark of small pictures: write lossless
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"quality": JPEG_QUALITY, "subsampling": 0},
    "webp": {"lossless": True},
}


def check_writable(base: Path) -> None:
    """Raise `OutputError` unless pictures can be written under `base` (created if missing).

    Cheap, so front ends call it before loading a model rather than failing after the work is done.
    """
    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=base, prefix=".keypaint-check-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {base}: {_reason(exc)}") from None


def check_format(format: str) -> None:
    """Raise `InvalidParams` unless keypaint can write `format` (front ends call it before painting)."""
    if format not in EXTENSIONS:
        raise InvalidParams("format", f"must be one of {', '.join(EXTENSIONS)}, got {format!r}")


def output_dir(base: Path, when: datetime | None = None) -> Path:
    """The day's folder `base/YYYY-MM-DD` (local date, as A1111), created if missing."""
    folder = base / (when or datetime.now()).strftime("%Y-%m-%d")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {_reason(exc)}") from None
    return folder


def save_image(
    image: Image.Image,
    folder: Path,
    *,
    infotext: str,
    metadata: dict[str, Any],
    stem_hint: str = "",
    format: ImageFormat = "png",
    xmp: str | None = None,
    description: str | None = None,
    software: str | None = None,
    finalize: Callable[[bytes], bytes] | None = None,
) -> Path:
    """Save `image` as the next numbered file in `folder`, with its infotext and JSON metadata.

    The name is `NNNNN-<stem_hint>.<ext>` where NNNNN is one more than the highest number in the folder
    (see `keypaint.outputs.files`: atomic, never overwriting, usual permissions).
    """
    check_format(format)
    data = encode_image(image, format, infotext=infotext, metadata=metadata, xmp=xmp,
                        description=description, software=software, finalize=finalize)
    return write_numbered(data, folder, stem_hint=stem_hint, ext=EXTENSIONS[format])


def format_of(path: Path) -> ImageFormat:
    """The picture format a file name asks for by its extension (.png, .jpg/.jpeg, .webp)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = "jpeg" if suffix == "jpg" else suffix
    if fmt not in EXTENSIONS:
        raise InvalidParams("path", f"{path} must end in .png, .jpg, .jpeg or .webp")
    return fmt  # type: ignore[return-value]


def encode_image(
    image: Image.Image,
    format: ImageFormat,
    *,
    infotext: str,
    metadata: dict[str, Any],
    xmp: str | None = None,
    description: str | None = None,
    software: str | None = None,
    finalize: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The file's bytes: PNG with text chunks (+ XMP iTXt); JPEG/WebP with EXIF and XMP.

    For JPEG/WebP the JSON has no chunk of its own: it is expected inside `xmp` (see provenance.xmp).
    `finalize` gets the encoded file and returns the bytes to write (C2PA signing binds to the exact
    bytes, so it runs last, before anything touches the disk).
    """
    buffer = io.BytesIO()
    if format == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(PNG_INFOTEXT_KEY, infotext)  # tEXt when Latin-1, else iTXt (as A1111 writes it)
        info.add_itxt(PNG_METADATA_KEY, json.dumps(metadata, ensure_ascii=False))
        if xmp is not None:
            info.add_itxt(PNG_XMP_KEY, xmp)
        if description is not None:
            info.add_itxt("Description", description)
        if software is not None:
            info.add_text("Software", software)
        image.save(buffer, format="PNG", pnginfo=info)
    else:
        exif = exif_block(infotext, size=image.size, jpeg=format == "jpeg", description=description,
                          software=software)
        extra: dict[str, Any] = {"xmp": xmp.encode("utf-8")} if xmp is not None else {}
        image.convert("RGB").save(buffer, format=format.upper(), exif=exif, **_SAVE_OPTIONS[format], **extra)
    return finalize(buffer.getvalue()) if finalize is not None else buffer.getvalue()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
