"""A1111's /sdapi/v1/loras and /sdapi/v1/embeddings: the files in `<home>/loras` and `<home>/embeddings`.

Clients (and keypaint's page) list them to offer `<lora:NAME:0.8>` and embedding names. Only headers are
read; file paths on the server are not shown, only names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keypaint.core.adapters import (
    embeddings_dir,
    list_adapter_files,
    loras_dir,
    read_embedding_file,
    read_lora_file,
)
from keypaint.errors import ModelError
from keypaint.models.loaded import LoadedModel


def lora_list(home: Path | None, model: LoadedModel) -> list[dict[str, Any]]:
    """[{name, alias, path, metadata}] as A1111 lists its LoRAs (path: the file name only).

    When `model` is the built-in one, its own LoRAs (`keypaint-lcm`) follow those of <home>/loras,
    unless one there has the same name."""
    from keypaint.builtin import MODEL

    out = []
    own = list_adapter_files(loras_dir(home))
    names = {path.stem for path in own}
    shipped = [] if model.name != MODEL.name else [
        path for path in list_adapter_files(MODEL.loras) if path.stem not in names
    ]
    for path in own + shipped:
        try:
            metadata = read_lora_file(path).header.metadata
        except ModelError:
            continue  # not a LoRA: not offered
        alias = metadata.get("ss_output_name") or path.stem
        out.append({"name": path.stem, "alias": alias, "path": path.name, "metadata": metadata})
    return out


def embedding_list(home: Path | None, model: LoadedModel) -> dict[str, dict[str, Any]]:
    """{"loaded": ..., "skipped": ...}: embeddings that fit `model`'s text encoder(s), and the others."""
    encoder = model.pipe.text_encoder
    dims = [int(encoder.get_input_embeddings().embedding_dim)] if encoder is not None else []
    loaded: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for path in list_adapter_files(embeddings_dir(home)):
        try:
            file = read_embedding_file(path)
        except ModelError:
            continue
        shapes = [info.shape for info in file.header.tensors.values()]
        first = shapes[0] if shapes else ()
        info = file.info
        entry = {
            "step": info.steps if info else None,
            "sd_checkpoint": info.base_short if info else None,
            "sd_checkpoint_name": info.base_model if info else None,
            "shape": int(first[-1]) if first else 0,
            "vectors": int(first[0]) if len(first) == 2 else 1,
        }
        fits = (model.kind.is_xl and {"clip_l", "clip_g"} <= file.header.tensors.keys()) or (
            not model.kind.is_xl and entry["shape"] in dims
        )
        (loaded if fits else skipped)[path.stem] = entry
    return {"loaded": loaded, "skipped": skipped}
