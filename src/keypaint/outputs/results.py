"""Saving a `GeneratedImage` with its A1111 infotext, keypaint's reproduction JSON and the AI marks.

Every picture is marked as AI-made (XMP/EXIF, invisible watermark, C2PA credentials: keypaint.provenance)
unless the caller's `ProvenanceSettings` turns a mark off; the JSON records that choice.
"""

from __future__ import annotations

from pathlib import Path

from keypaint.core.painter import GeneratedImage
from keypaint.outputs.infotext import build_infotext
from keypaint.outputs.store import ImageFormat, check_format, reproduction_metadata, save_image
from keypaint.provenance.settings import ProvenanceSettings


def infotext_for(result: GeneratedImage) -> str:
    """The A1111 infotext of one picture (what A1111 shows under it and writes into its PNG)."""
    params = result.params
    assert params.width is not None and params.height is not None
    return build_infotext(
        params,
        seed=result.seed,
        width=params.width,
        height=params.height,
        model_name=result.model_name,
        model_hash=result.model_hash,
        extra=result.extra or None,
    )


def metadata_for(result: GeneratedImage) -> dict:
    params = result.params
    assert params.width is not None and params.height is not None
    data = reproduction_metadata(
        params,
        seed=result.seed,
        batch_index=result.index,
        width=params.width,
        height=params.height,
        model_name=result.model_name,
        model_sha256=result.model_hash,
        device=result.device,
        dtype=result.dtype,
    )
    if result.extra:
        data["extra"] = dict(result.extra)
    return data


def save_generated(
    result: GeneratedImage,
    folder: Path,
    *,
    format: ImageFormat = "png",
    provenance: ProvenanceSettings | None = None,
) -> Path:
    """Write `result` as `folder/NNNNN-<seed>.<ext>`, marked, atomically and without overwriting anything.

    `provenance` None means every mark on (the default a front end must not weaken silently).
    """
    from keypaint.provenance.marks import prepare

    check_format(format)
    metadata = metadata_for(result)
    marks = prepare(result.image, metadata, fmt=format, settings=provenance or ProvenanceSettings())
    return save_image(
        marks.image,
        folder,
        infotext=infotext_for(result),
        metadata=metadata,
        stem_hint=str(result.seed),
        format=format,
        xmp=marks.xmp,
        description=marks.description,
        software=marks.software,
        finalize=marks.finalize,
    )
