"""Putting the marks on one picture: watermark in the pixels, XMP/EXIF, C2PA; and the record of them.

`save_generated` (keypaint.outputs.results) calls `prepare` before the file is encoded and uses its
`finalize` to sign the encoded bytes, so every output path (CLI, Python API, server) marks the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from keypaint.provenance import watermark
from keypaint.provenance.settings import AI_NOTICE, DIGITAL_SOURCE_TYPE, ProvenanceSettings
from keypaint.provenance.xmp import build_xmp
from keypaint.versions import package_version


@dataclass
class PreparedMarks:
    """The marked pixels and what the writer must add to the file."""

    image: Image.Image  # watermarked unless the watermark is off
    record: dict[str, Any]  # goes into the JSON metadata as "provenance"
    xmp: str
    description: str  # EXIF ImageDescription / PNG Description
    software: str
    finalize: Callable[[bytes], bytes] | None  # signs the encoded file (None when C2PA is off)


def prepare(
    image: Image.Image,
    metadata: dict[str, Any],
    *,
    fmt: str,
    settings: ProvenanceSettings,
) -> PreparedMarks:
    """Mark `image` per `settings`; `metadata` is the picture's JSON (it gains the provenance record)."""
    version = package_version("keypaint") or "unknown"
    created = metadata.get("created")
    # the recipe that re-makes these pixels (the position in a batch does not change them)
    params = {k: v for k, v in (metadata.get("params") or {}).items() if k != "batch_index"}
    picture_id = watermark.picture_id_for({"params": params, "model": metadata.get("model")})
    record: dict[str, Any] = {
        "ai_generated": True,
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "picture_id": picture_id,
        "watermark": ({"library": "invisible-watermark", "method": watermark.METHOD, "payload": "keypaint",
                       "bits": watermark.PAYLOAD_BITS, "scheme": watermark.SCHEME}
                      if settings.watermark else None),
        "c2pa": settings.c2pa,
        "disabled": settings.disabled,  # marks turned off by an explicit setting
    }
    metadata["provenance"] = record
    marked = watermark.embed(image, picture_id) if settings.watermark else image
    # PNG has a chunk for the JSON; JPEG and WebP carry it inside the XMP packet
    xmp = build_xmp(f"keypaint {version}", str(created) if created else None,
                    metadata=None if fmt == "png" else metadata)
    finalize = None
    if settings.c2pa:
        from keypaint.provenance import credentials

        model = metadata.get("model") or {}
        definition = credentials.manifest(model_name=model.get("name"), model_hash=model.get("sha256"),
                                          picture_id=picture_id, version=version)

        def finalize(data: bytes) -> bytes:
            return credentials.sign(data, fmt, definition, settings)

    return PreparedMarks(image=marked, record=record, xmp=xmp, description=AI_NOTICE,
                         software=f"keypaint {version}", finalize=finalize)
