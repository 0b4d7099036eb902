"""Saving pictures so that each one carries how it was made, and reading that back.

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.params import GenerationParams
from keypaint.errors import ImageError, InvalidParams, OutputError
from keypaint.outputs.exif import exif_block
from keypaint.outputs.files import write_numbered
from keypaint.outputs.infotext import params_from_infotext
from keypaint.provenance.xmp import embedded_metadata
from keypaint.versions import package_version

METADATA_FORMAT = "keypaint/1"  # the `format` key of the JSON chunk; bump when its meaning changes
PNG_INFOTEXT_KEY = "parameters"  # the text chunk A1111 writes and reads
PNG_METADATA_KEY = "keypaint"
# the picture's own request in its JSON, in this order: the codec's fields (core.codec) but the run's shape
# (batch size and count, best-of: the picture is one of them) plus the mode and the picture's place in the run
RECORDED_FIELDS = ("prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width",
                   "height", "strength", "mode", "expand_keywords", "batch_index", "loras", "embeddings")
REQUIRED_FIELDS = ("prompt", "steps", "guidance_scale", "sampler", "seed")
PNG_XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword Adobe's XMP spec gives for PNG

ImageFormat = Literal["png", "jpeg", "webp"]
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
JPEG_QUALITY = 95  # with full-resolution chroma: the invisible watermark lives in chroma and survives
# lossy WebP always halves chroma resolution, which erases the watermark of small pictures: write lossless
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"quality": JPEG_QUALITY, "subsampling": 0},
    "webp": {"lossless": True},
}

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


@dataclass(frozen=True)
class ImageMetadata:
    """What a picture says about how it was made; either part may be missing."""

    infotext: str | None  # A1111 infotext (PNG `parameters` chunk or EXIF UserComment)
    data: dict[str, Any] | None  # keypaint's JSON chunk


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


def read_metadata(path: Path) -> ImageMetadata:
    """The infotext and keypaint JSON a picture carries.

    PNG: the `parameters` and `keypaint` text chunks (A1111 PNGs have only `parameters`).
    JPEG/WebP: the EXIF UserComment, where A1111 writes the infotext (best effort), and keypaint's JSON
    from the XMP packet.
    """
    try:
        with Image.open(path) as image:
            if isinstance(image, PngImagePlugin.PngImageFile):
                text = dict(image.text)
            else:
                text = {}
                comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
                if comment:
                    text[PNG_INFOTEXT_KEY] = _decode_user_comment(comment)
                embedded = embedded_metadata(image.info.get("xmp"))  # keypaint's JSON, in the XMP packet
                if embedded is not None:
                    text[PNG_METADATA_KEY] = json.dumps(embedded)
    except FileNotFoundError:
        raise ImageError(f"no such image: {path}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not a picture (keypaint reads PNG, JPEG and WebP files)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None

    data = None
    if PNG_METADATA_KEY in text:
        try:
            data = json.loads(text[PNG_METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise ImageError(f"the keypaint metadata in {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ImageError(f"the keypaint metadata in {path} is not a JSON object")
    return ImageMetadata(infotext=text.get(PNG_INFOTEXT_KEY) or None, data=data)


def _decode_user_comment(raw: bytes | str) -> str:
    """EXIF UserComment: an 8-byte charset marker, then the text (A1111 writes UNICODE, UTF-16)."""
    if isinstance(raw, str):
        return raw.rstrip("\0")
    marker, body = raw[:8], raw[8:]
    if marker.startswith(b"UNICODE"):
        # Latin text has a zero byte per character: first in big-endian (what A1111's piexif writes)
        little_endian = body[1::2].count(0) > body[0::2].count(0)
        text = body.decode("utf-16-le" if little_endian else "utf-16-be", errors="replace")
    elif marker.startswith(b"ASCII"):
        text = body.decode("ascii", errors="replace")
    else:
        text = body.decode("utf-8", errors="replace")
    return text.rstrip("\0")


def reproduction_metadata(
    params: GenerationParams,
    *,
    seed: int,
    batch_index: int,
    width: int,
    height: int,
    model_name: str | None,
    model_sha256: str | None,
    device: object,
    dtype: object,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The JSON kept in each picture: this picture's own request, the model and the software that ran it.

    `seed` is this picture's seed (the run's seed + batch_index). `device` and `dtype` may be torch objects
    or strings. The init image and mask of img2img are not stored; `mode` says one was used.
    """
    named = replace(params, seed=seed, width=width, height=height,
                    # by name only (a file's stem): where files sit on this machine is not for the picture
                    loras=tuple(replace(ref, source=_adapter_name(ref.source)) for ref in params.loras),
                    embeddings=tuple(_adapter_name(source) for source in params.embeddings))
    record = {**params_to_json(named), "mode": params.mode, "batch_index": batch_index}
    return {
        "format": METADATA_FORMAT,
        "params": {name: record[name] for name in RECORDED_FIELDS},
        "model": {"name": model_name, "sha256": model_sha256},
        "versions": {name: package_version(name)
                     for name in ("keypaint", "torch", "diffusers", "transformers")},
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "created": (created or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
    }


def params_from_metadata(data: dict[str, Any] | ImageMetadata, **overrides: Any) -> GenerationParams:
    """`GenerationParams` that make the recorded picture again (`keypaint generate --from IMAGE`).

    Given `ImageMetadata`, prefers keypaint's JSON and falls back to the A1111 infotext. `overrides`
    (GenerationParams fields) win over what was recorded; img2img callers pass `init_image` here.
    """
    if isinstance(data, ImageMetadata):
        if data.data is not None:
            return _params_from_json(data.data, overrides)
        if data.infotext:
            return params_from_infotext(data.infotext, **overrides)
        raise ImageError("the image records no generation parameters (no keypaint or A1111 metadata)")
    return _params_from_json(data, overrides)


def params_from_image(path: Path, **overrides: Any) -> GenerationParams:
    """`params_from_metadata(read_metadata(path), **overrides)`."""
    return params_from_metadata(read_metadata(path), **overrides)


def _params_from_json(data: dict[str, Any], overrides: dict[str, Any]) -> GenerationParams:
    if data.get("format") != METADATA_FORMAT:
        raise InvalidParams("metadata", f"unknown metadata format {data.get('format')!r}, "
                                        f"expected {METADATA_FORMAT!r}")
    recorded = data.get("params")
    if not isinstance(recorded, dict):
        raise InvalidParams("metadata", "has no 'params' object")
    for name in REQUIRED_FIELDS:
        if name not in recorded:
            raise InvalidParams(name, "missing from the recorded metadata")
    # "mode" and "batch_index" describe the picture, not the request; other keys are a later version's
    request = {name: value for name, value in recorded.items()
               if name in RECORDED_FIELDS and name not in ("mode", "batch_index")}
    return params_from_json(request, **overrides)


def _adapter_name(source: str) -> str:
    """A LoRA or embedding as `--from` finds it again: its name in keypaint's folders."""
    plain = Path(source).name == source and not source.endswith(".safetensors")
    return source if plain else Path(source).stem


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
