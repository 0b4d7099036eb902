"""The files an SD3 or Flux model is made of, found and checked before any tensor is read (no PyTorch).

People download these models whole (one checkpoint with text encoders and VAE) or in parts: a transformer
file (safetensors, or a GGUF quantisation) with ComfyUI's `clip_l.safetensors`, `clip_g.safetensors`,
`t5xxl_fp16.safetensors` (or `t5xxl_fp8_e4m3fn.safetensors`) and the VAE (`ae.safetensors` for Flux). The
parts come by option (`--clip-l`, `--clip-g`, `--t5`, `--vae`) or are found beside the model file (or in a
`text_encoders/`, `clip/` or `vae/` folder beside it), by name and then checked by their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import (
    SAFETENSORS_SUFFIX,
    SafetensorsHeader,
    TensorInfo,
    read_safetensors_header,
)
from keypaint.models.flow_layout import ENCODER_WIDTH, ENCODERS, Encoder, FlowDetected, encoder_of
from keypaint.models.loaded import ModelKind

GGUF_SUFFIX = ".gguf"
OPTION = {"clip_l": "--clip-l", "clip_g": "--clip-g", "t5xxl": "--t5"}
# what a part's file name starts with in ComfyUI's and Forge's folders
_NAMES: dict[str, tuple[str, ...]] = {
    "clip_l": ("clip_l",), "clip_g": ("clip_g",), "t5xxl": ("t5xxl", "t5"),
    "vae": ("ae.", "ae_", "vae", "flux_vae", "sd3_vae", "diffusion_pytorch_model"),
}
_FOLDERS = (".", "text_encoders", "clip", "vae")


@dataclass(frozen=True)
class ComponentFiles:
    """Separate text-encoder files for an SD3/Flux model (None: inside the model file, or found beside it)."""

    clip_l: Path | None = None
    clip_g: Path | None = None
    t5: Path | None = None
    no_t5: bool = False  # SD3 without its T5 encoder (zeros in its place: less memory, weaker prompts)

    def given(self) -> dict[Encoder, Path]:
        pairs: list[tuple[Encoder, Path | None]] = [("clip_l", self.clip_l), ("clip_g", self.clip_g),
                                                    ("t5xxl", self.t5)]
        return {e: Path(p).expanduser() for e, p in pairs if p is not None}

    def __bool__(self) -> bool:
        return bool(self.given()) or self.no_t5


def read_gguf_header(path: Path) -> SafetensorsHeader:
    """The tensor names, shapes and quantisation types of a GGUF file (memory-mapped; no tensor read)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        tensors = {t.name: TensorInfo(t.tensor_type.name, tuple(int(d) for d in reversed(t.shape)))
                   for t in reader.tensors}
    except ImportError:
        raise ModelError(f"{path.name}: reading GGUF needs the gguf package (pip install gguf)") from None
    except Exception as e:  # gguf raises ValueError/struct errors on a damaged file
        raise ModelError(f"{path.name}: not a valid GGUF file ({e.__class__.__name__})") from None
    return SafetensorsHeader(tensors=tensors)


def check_encoder_file(path: Path, wanted: Encoder) -> SafetensorsHeader:
    """A separate text-encoder file holding `wanted` (CLIP-L, CLIP-G or T5-XXL); ModelError otherwise."""
    if not path.is_file():
        raise ModelError(f"{OPTION[wanted]}: file not found: {path}")
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        raise ModelError(f"{path.name}: text encoders are read from .safetensors files")
    header = read_safetensors_header(path)
    found = encoder_of({k: v.shape for k, v in header.tensors.items()})
    if found is None:
        raise ModelError(f"{path.name}: not a CLIP or T5 text encoder (given as {OPTION[wanted]})")
    clip_of_other_size = found == "clip" and wanted in ("clip_l", "clip_g")
    if found != wanted and not clip_of_other_size:
        raise ModelError(f"{path.name}: holds a {_label(found)} text encoder, not the {_label(wanted)} that "
                         f"{OPTION[wanted]} takes")
    return header


def _label(encoder: str) -> str:
    return {"clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5xxl": "T5-XXL", "clip": "CLIP"}.get(encoder, encoder)


def _beside(model: Path, part: str) -> list[Path]:
    found: list[Path] = []
    for sub in _FOLDERS:
        folder = model.parent / sub
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob(f"*{SAFETENSORS_SUFFIX}")):
            if file.resolve() != model.resolve() and file.name.lower().startswith(_NAMES[part]):
                found.append(file)
    return found


def find_components(detected: FlowDetected, model: Path, given: ComponentFiles,
                    vae: Path | None) -> tuple[dict[Encoder, Path], Path | None]:
    """The separate text-encoder files the model needs, and its VAE file if it has no VAE of its own.

    An option wins; otherwise a part missing from the model file is looked for beside it. ModelError names
    everything still missing and the options that give it."""
    chosen: dict[Encoder, Path] = {}
    wanted = ENCODERS[detected.kind]
    if given.no_t5:
        if detected.kind is not ModelKind.SD3:
            raise ModelError(f"--no-t5: {detected.kind.value} models cannot run without their T5 encoder")
        if given.t5 is not None:
            raise ModelError("--no-t5 and --t5 ask for opposite things; give one")
        wanted = tuple(e for e in wanted if e != "t5xxl")
    for encoder, path in given.given().items():
        if encoder not in wanted:
            raise ModelError(f"{OPTION[encoder]}: {detected.kind.value} models have no "
                             f"{_label(encoder)} encoder")
        check_encoder_file(path, encoder)
        chosen[encoder] = path
    missing: list[str] = []
    for encoder in detected.missing_encoders:
        if encoder in chosen or encoder not in wanted:
            continue
        candidates = [p for p in _beside(model, encoder) if _holds(p, encoder)]
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise ModelError(f"{model.name}: several {_label(encoder)} files beside it ({names}); "
                             f"choose one with {OPTION[encoder]}")
        if candidates:
            chosen[encoder] = candidates[0]
        else:
            missing.append(f"{OPTION[encoder]} FILE ({_label(encoder)})")
    if vae is None and not detected.has_vae:
        files = [p for p in _beside(model, "vae") if _is_vae(p)]
        if len(files) == 1:
            vae = files[0]
        else:
            several = f" (several beside it: {', '.join(p.name for p in files)})" if files else ""
            missing.append(f"--vae FILE{several}")
    if missing:
        raise ModelError(f"{model.name} holds only part of a {detected.config} model; give "
                         f"{', '.join(missing)}, "
                         "or put the files beside it")
    return chosen, vae


def _holds(path: Path, encoder: Encoder) -> bool:
    try:
        found = encoder_of({k: v.shape for k, v in read_safetensors_header(path).tensors.items()})
    except ModelError:
        return False
    return found == encoder or (found == "clip" and encoder != "t5xxl")


def _is_vae(path: Path) -> bool:
    try:
        header = read_safetensors_header(path)
    except ModelError:
        return False
    conv = header.shape("decoder.conv_in.weight")
    return conv is not None and len(conv) == 4 and conv[1] == 16  # SD3/Flux VAEs have 16 latent channels


__all__ = ["ENCODER_WIDTH", "GGUF_SUFFIX", "ComponentFiles", "find_components", "read_gguf_header"]
