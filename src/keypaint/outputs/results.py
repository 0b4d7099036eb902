"""Saving a `GeneratedImage` with its A1111 infotext and keypaint's reproduction JSON."""

from __future__ import annotations

from pathlib import Path

from keypaint.core.painter import GeneratedImage
from keypaint.outputs.infotext import build_infotext
from keypaint.outputs.store import reproduction_metadata, save_image


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


def save_generated(result: GeneratedImage, folder: Path) -> Path:
    """Write `result` as `folder/NNNNN-<seed>.png`, atomically and without overwriting anything."""
    return save_image(
        result.image,
        folder,
        infotext=infotext_for(result),
        metadata=metadata_for(result),
        stem_hint=str(result.seed),
    )
