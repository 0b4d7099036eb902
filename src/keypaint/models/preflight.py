"""`check_model`: everything that can be known about a model without loading it, in milliseconds.

It runs before anything heavy (importing PyTorch, hashing gigabytes, queueing a server job): the name
resolves; a pickle is refused unless allowed; the file is within the size limit; a safetensors header is
valid against the file's real size; a single file holds a Stable Diffusion U-Net keypaint knows. The
loader runs it first too, so the CLI, the Python API and the server refuse a model with the same words.
Nothing here imports PyTorch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIX,
    PickleRefused,
    SafetensorsHeader,
    read_safetensors_header,
)
from keypaint.models.detect import UNET_PREFIX, Detected, detect_checkpoint
from keypaint.models.flow_files import GGUF_SUFFIX, ComponentFiles, find_components, read_gguf_header
from keypaint.models.flow_layout import FlowDetected, detect_flow
from keypaint.models.registry import BUILTIN_ALIASES, is_diffusers_folder, keypaint_home, resolve_model

MAX_MODEL_GB_ENV = "KEYPAINT_MAX_MODEL_GB"
DEFAULT_MAX_MODEL_GB = 32.0  # an SDXL checkpoint in fp32 with EMA weights is about 14 GB


@dataclass(frozen=True)
class CheckedFile:
    """A model file or folder that passed the checks, and what its header said."""

    path: Path
    header: SafetensorsHeader | None  # None for folders and pickles (a pickle is not opened here)
    detected: Detected | FlowDetected | None = None  # what a single file holds (check_model only)


def max_model_bytes(gigabytes: float | None = None) -> int:
    """The size limit: `gigabytes`, else `$KEYPAINT_MAX_MODEL_GB`, else 32 GB."""
    if gigabytes is None:
        text = os.environ.get(MAX_MODEL_GB_ENV, "").strip()
        try:
            gigabytes = float(text) if text else DEFAULT_MAX_MODEL_GB
        except ValueError:
            raise ModelError(f"${MAX_MODEL_GB_ENV} must be a number of gigabytes, got {text!r}") from None
    if not gigabytes > 0:
        raise ModelError(f"the model size limit must be more than 0 GB, got {gigabytes:g}")
    return int(gigabytes * 1e9)


def check_model(spec: str | Path | None, *, home: Path | None = None, allow_pickle: bool = False,
                max_bytes: int | None = None, components: ComponentFiles | None = None,
                vae: Path | None = None) -> CheckedFile | None:
    """The model `spec` names, checked for loading; None for the built-in model. `ModelError` if not.

    An SD3/Flux file must have its parts: inside, given (`components`, `vae`) or beside it."""
    if spec is None or (isinstance(spec, str) and spec in BUILTIN_ALIASES):
        return None
    home = home or keypaint_home()
    path = resolve_model(spec, home)
    if path.is_dir():
        return _check_folder(path, allow_pickle, max_bytes)
    checked = check_file(path, allow_pickle=allow_pickle, max_bytes=max_bytes)
    if checked.header is None:
        return checked  # an allowed pickle: its keys are read once it is converted
    dtypes = {k: t.dtype for k, t in checked.header.tensors.items()}
    flow = detect_flow(checked.header.tensors, path.name, dtypes)
    if flow is not None:
        find_components(flow, path, components or ComponentFiles(), vae)  # headers only
        return CheckedFile(path, checked.header, flow)
    if path.suffix.lower() == GGUF_SUFFIX:
        raise ModelError(f"{path.name}: no SD3 or Flux transformer in this GGUF file; keypaint reads GGUF "
                         "quantisations of those")
    sidecar = path.with_suffix(".yaml")
    sidecar = sidecar if sidecar.is_file() else None
    if sidecar is None and not any(k.startswith(UNET_PREFIX) for k in checked.header.tensors):
        raise ModelError(f"{path.name}: no Stable Diffusion U-Net in this file (no model.diffusion_model.*); "
                         "is it a LoRA, a VAE or an embedding rather than a full model?")
    return CheckedFile(path, checked.header, detect_checkpoint(checked.header, path.name, sidecar))


def check_vae(spec: str | Path, *, home: Path | None = None, allow_pickle: bool = False,
              max_bytes: int | None = None) -> Path:
    """The separate VAE `spec` names (a file is checked here; a folder when diffusers loads it)."""
    path = resolve_model(spec, home or keypaint_home())
    if path.is_file():
        check_file(path, allow_pickle=allow_pickle, max_bytes=max_bytes)
    return path


def check_file(path: Path, *, allow_pickle: bool = False, max_bytes: int | None = None) -> CheckedFile:
    """A single weights file (model or VAE): its type, its size, and a safetensors file's header."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise PickleRefused(path, f"{path.name} is a pickle checkpoint")
    if suffix not in (SAFETENSORS_SUFFIX, GGUF_SUFFIX, *PICKLE_SUFFIXES):
        raise ModelError(f"{path.name}: unsupported model file type {path.suffix or '(none)'!r}; "
                         "expected .safetensors, .gguf (or a .ckpt/.pt/.pth/.bin pickle)")
    _check_size(path, path.stat().st_size, max_bytes)
    if suffix in PICKLE_SUFFIXES:
        return CheckedFile(path, None)
    if suffix == GGUF_SUFFIX:
        return CheckedFile(path, read_gguf_header(path))
    return CheckedFile(path, read_safetensors_header(path))


def _check_folder(path: Path, allow_pickle: bool, max_bytes: int | None) -> CheckedFile:
    if not is_diffusers_folder(path):
        raise ModelError(f"{path} is a folder but not a diffusers model (no model_index.json)")
    parts = sorted(p for p in path.iterdir() if p.is_dir())
    pickled = [p.name for p in parts if _pickle_only(p)]
    if pickled and not allow_pickle:
        raise PickleRefused(path, f"{path.name}: {', '.join(pickled)} weights are pickles (.bin)")
    weights = [f for part in parts for f in part.iterdir() if f.is_file()]
    _check_size(path, sum(f.stat().st_size for f in weights), max_bytes)
    for file in weights:
        if file.suffix.lower() == SAFETENSORS_SUFFIX:
            read_safetensors_header(file)  # a truncated or hostile part fails now, not while loading
    return CheckedFile(path, None)


def _pickle_only(folder: Path) -> bool:
    """A subfolder whose weights exist only as pickles (.bin/.ckpt/.pt/.pth)."""
    suffixes = {f.suffix.lower() for f in folder.iterdir() if f.is_file()}
    return bool(suffixes & set(PICKLE_SUFFIXES)) and SAFETENSORS_SUFFIX not in suffixes


def _check_size(path: Path, size: int, max_bytes: int | None) -> None:
    limit = max_model_bytes() if max_bytes is None else max_bytes
    if size > limit:
        raise ModelError(f"{path.name}: {size / 1e9:,.1f} GB is more than the {limit / 1e9:,.1f} GB allowed "
                         f"for a model (raise it with --max-model-gb or ${MAX_MODEL_GB_ENV})")
