"""Where models live and how a name on the command line becomes a file or folder.

`<home>/models` holds single files (`NAME.safetensors`, or pickles such as `NAME.ckpt`) and diffusers
folders (`NAME/model_index.json`). `--model NAME` finds any of them; `list_models` shows them without
loading anything (a safetensors header is enough to tell SD 1.x from SDXL; pickles are never opened).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import platformdirs

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import PICKLE_SUFFIXES, SAFETENSORS_SUFFIX, read_safetensors_header
from keypaint.models.detect import CONV_IN_KEY, detect_kind, kind_from_diffusers
from keypaint.models.flow_layout import detect_flow
from keypaint.models.loaded import LoadedModel, ModelKind

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

ModelFormat = Literal["diffusers", "safetensors", "pickle", "builtin"]
BUILTIN_NAME = "keypaint-emoji"
BUILTIN_ALIASES = ("builtin", BUILTIN_NAME)
_FLOW_PIPELINES = {"FluxPipeline": ModelKind.FLUX, "StableDiffusion3Pipeline": ModelKind.SD3}
# Lookup order for a bare NAME: safetensors before pickles, so the safe copy wins when both exist.
_SUFFIXES = (SAFETENSORS_SUFFIX, ".gguf", *PICKLE_SUFFIXES)


@dataclass(frozen=True)
class ModelEntry:
    """One model found under `<home>/models` (or the built-in one)."""

    name: str
    path: Path | None  # None for the built-in model
    format: ModelFormat
    kind: ModelKind | None  # None when it cannot be told without loading (pickles, unknown layouts)
    size: int  # bytes on disk (a folder: all its files)
    inpainting: bool | None = None


@dataclass(frozen=True)
class BuiltinModel:
    """The built-in model as `keypaint.builtin` declares it (`keypaint.builtin.MODEL`).

    models and core never import keypaint.builtin: whoever sits above both hands this value down (the
    front ends, through Painter.load), so a test hands in a fake and nothing is looked up by name.
    """

    name: str
    weights: Path  # its weights folder; the LoRAs shipped with it are in `loras/`
    load: Callable[[torch.device | str, torch.dtype], LoadedModel]  # (device, dtype) -> the model
    text_encoder: Callable[[], Path]  # its text encoder's folder; ModelError when that is not installed

    @property
    def loras(self) -> Path:
        return self.weights / "loras"

    @property
    def controls(self) -> Path:
        """Its shipped control models, one folder each (`keypaint-sketch`), found by name as ControlNets."""
        return self.weights / "control"


def keypaint_home() -> Path:
    """`$KEYPAINT_HOME`, else the platform's per-user data folder (e.g. ~/.local/share/keypaint)."""
    env = os.environ.get("KEYPAINT_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("keypaint"))


def models_dir(home: Path | None = None) -> Path:
    return (home or keypaint_home()) / "models"


def is_diffusers_folder(path: Path) -> bool:
    return path.is_dir() and (path / "model_index.json").is_file()


def resolve_model(spec: str | Path, home: Path | None = None) -> Path:
    """The file or folder `spec` names: an existing path, else NAME looked up in `<home>/models`."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    text = str(spec)
    if isinstance(spec, Path) or os.sep in text or (os.altsep and os.altsep in text):
        raise ModelError(f"model file not found: {path}")
    folder = models_dir(home)
    for candidate in (folder / text, *(folder / f"{text}{suffix}" for suffix in _SUFFIXES)):
        if candidate.is_file() or is_diffusers_folder(candidate):
            return candidate
    available = ", ".join(e.name for e in list_models(home)) or "none"
    raise ModelError(f"unknown model {text!r}; available in {folder}: {available}")


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _safetensors_entry(path: Path) -> ModelEntry:
    kind, inpainting = None, None
    try:
        header = read_safetensors_header(path)
    except ModelError:
        header = None  # listed anyway; loading it will explain what is wrong
    if header is not None:
        try:
            flow = detect_flow(header.tensors, path.name)
        except ModelError:
            flow = None  # a mixed file: listed, and refused when loaded
        kind = flow.kind if flow is not None else detect_kind(header.tensors)
        conv_in = header.shape(CONV_IN_KEY)
        inpainting = conv_in[1] == 9 if conv_in and len(conv_in) == 4 else None
    return ModelEntry(path.stem, path, "safetensors", kind, path.stat().st_size, inpainting)


def _diffusers_entry(path: Path) -> ModelEntry:
    kind, inpainting = None, None
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        flow = _FLOW_PIPELINES.get(str(index.get("_class_name")))
        if flow is not None:
            return ModelEntry(path.name, path, "diffusers", flow, _folder_size(path), False)
        unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
        text_encoder = index.get("text_encoder") or [None, None]
        kind = kind_from_diffusers(unet, text_encoder[1])
        inpainting = unet.get("in_channels") == 9
    except (OSError, ValueError, AttributeError):
        pass
    return ModelEntry(path.name, path, "diffusers", kind, _folder_size(path), inpainting)


def list_models(home: Path | None = None) -> list[ModelEntry]:
    """Every model keypaint can be pointed at by name, built-in first, then by name."""
    entries: list[ModelEntry] = []
    if importlib.util.find_spec("keypaint.builtin") is not None:
        entries.append(ModelEntry(BUILTIN_NAME, None, "builtin", ModelKind.KEYPAINT, 0))
    folder = models_dir(home)
    found: list[ModelEntry] = []
    if folder.is_dir():
        for path in folder.iterdir():
            suffix = path.suffix.lower()
            if is_diffusers_folder(path):
                found.append(_diffusers_entry(path))
            elif path.is_file() and suffix == SAFETENSORS_SUFFIX:
                found.append(_safetensors_entry(path))
            elif path.is_file() and suffix in PICKLE_SUFFIXES:
                found.append(ModelEntry(path.stem, path, "pickle", None, path.stat().st_size))
    found.sort(key=lambda e: (e.name.lower(), e.format != "safetensors"))
    return entries + found
