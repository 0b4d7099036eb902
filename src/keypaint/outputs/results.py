"""Saving a `GeneratedImage` with its A1111 infotext, keypaint's reproduction JSON and the AI marks.

Every picture is marked as AI-made (XMP/EXIF, invisible watermark, C2PA credentials: keypaint.provenance)
unless the caller's `ProvenanceSettings` turns a mark off; the JSON records that choice.
"""

from __future__ import annotations

from pathlib import Path

from keypaint.core.painter import GeneratedImage
from keypaint.outputs.control_images import save_control_images
from keypaint.outputs.files import write_new, write_numbered
from keypaint.outputs.infotext import build_infotext
from keypaint.outputs.metadata import reproduction_metadata
from keypaint.outputs.saving import EXTENSIONS, ImageFormat, check_format, encode_image, format_of
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
    check_format(format)
    data = encode_generated(result, format, provenance)
    save_control_images(result.params, folder)  # beside the picture, for --from (outputs.control_images)
    return write_numbered(data, folder, stem_hint=str(result.seed), ext=EXTENSIONS[format])


def save_generated_as(result: GeneratedImage, path: Path, *, provenance: ProvenanceSettings | None = None
                      ) -> Path:
    """Write `result` as exactly `path` (format from its extension), with what `save_generated` writes.

    `OutputError` if `path` exists: a picture is never overwritten.
    """
    format = format_of(path)
    save_control_images(result.params, Path(path).parent)
    return write_new(encode_generated(result, format, provenance), Path(path))


def encode_generated(result: GeneratedImage, format: ImageFormat, provenance: ProvenanceSettings | None
                     ) -> bytes:
    """The file's bytes: the picture with its AI marks, its infotext and its reproduction JSON."""
    from keypaint.provenance.marks import prepare

    metadata = metadata_for(result)
    marks = prepare(result.image, metadata, fmt=format, settings=provenance or ProvenanceSettings())
    return encode_image(
        marks.image,
        format,
        infotext=infotext_for(result),
        metadata=metadata,
        xmp=marks.xmp,
        description=marks.description,
        software=marks.software,
        finalize=marks.finalize,
    )
