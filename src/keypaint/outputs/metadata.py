"""What a saved picture says about how it was made: keypaint's reproduction JSON, and reading it back.

The JSON (`reproduction_metadata`) holds this picture's own request, the model and the software that made
it; `read_metadata` finds it and A1111's infotext in a PNG's text chunks or a JPEG's/WebP's EXIF and XMP,
and `params_from_metadata` turns either back into `GenerationParams` (`keypaint generate --from IMAGE`).
`outputs.saving` writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.params import GenerationParams
from keypaint.errors import ImageError, InvalidParams
from keypaint.outputs.infotext import params_from_infotext
from keypaint.provenance.xmp import embedded_metadata
from keypaint.versions import package_version

METADATA_FORMAT = "keypaint/1"  # the `format` key of the JSON chunk; bump when its meaning changes
PNG_INFOTEXT_KEY = "parameters"  # the text chunk A1111 writes and reads
PNG_METADATA_KEY = "keypaint"
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
# the picture's own request in its JSON, in this order: the codec's fields (core.codec) but the run's shape
# (batch size and count, best-of: the picture is one of them) plus the mode and the picture's place in the run
RECORDED_FIELDS = ("prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width",
                   "height", "strength", "mode", "expand_keywords", "batch_index", "loras", "embeddings",
                   "control_units", "hires", "outpaint", "flow")
REQUIRED_FIELDS = ("prompt", "steps", "guidance_scale", "sampler", "seed")
@dataclass(frozen=True)
class ImageMetadata:
    """What a picture says about how it was made; either part may be missing."""

    infotext: str | None  # A1111 infotext (PNG `parameters` chunk or EXIF UserComment)
    data: dict[str, Any] | None  # keypaint's JSON chunk


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
