"""Turning an original-layout (LDM/SGM) state dict into diffusers components.

diffusers does the key conversion: `UNet2DConditionModel/AutoencoderKL.from_single_file` for the U-Net and
VAE and its CLIP/OpenCLIP converter for the text encoders, each pointed at a local config folder with
`local_files_only=True`. We call them per component rather than `StableDiffusionPipeline.from_single_file`
so that the file is read once (and already validated by keypaint), each text encoder sees only its own
keys (SDXL's two encoders are told apart by prefix, not by guessing from tensor widths), and no code path
can fall back to downloading a config.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

from keypaint.errors import ModelError
from keypaint.models.assemble import Pipeline, assemble_pipeline, check_complete
from keypaint.models.configs import load_scheduler, load_tokenizer, read_json
from keypaint.models.detect import UNET_PREFIX, Detected

T = TypeVar("T", bound=torch.nn.Module)
VAE_PREFIXES = ("first_stage_model.", "vae.", "")


def _build(name: str, part: str, make: Callable[[], T]) -> T:
    """Run one diffusers conversion, turning its errors into a one-line ModelError."""
    try:
        module = make()
    except ModelError:
        raise
    except Exception as e:  # diffusers/transformers raise ValueError, RuntimeError, KeyError, their own types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise ModelError(f"{name}: cannot build the {part} from this checkpoint ({msg[:300]})") from None
    check_complete(module, name, part)
    return module


def _text_encoder(checkpoint: dict[str, torch.Tensor], prefix: str, config_dir: Path, subfolder: str,
                  class_name: str, dtype: torch.dtype, name: str) -> torch.nn.Module:
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise ModelError(f"{name}: unknown text encoder class {class_name!r} in {config_dir.name}")
    own = {k: v for k, v in checkpoint.items() if k.startswith(prefix)}
    if not own:
        raise ModelError(f"{name}: the checkpoint has no weights for the {subfolder} ({prefix}*)")
    return _build(name, subfolder, lambda: create_diffusers_clip_model_from_ldm(
        cls, checkpoint=own, config=str(config_dir), subfolder=subfolder, torch_dtype=dtype,
        local_files_only=True))


def has_vae(checkpoint: dict[str, torch.Tensor]) -> bool:
    return any(f"{p}decoder.conv_in.weight" in checkpoint for p in VAE_PREFIXES)


def vae_from_checkpoint(checkpoint: dict[str, torch.Tensor], config_dir: Path, subfolder: str | None,
                        dtype: torch.dtype, name: str) -> AutoencoderKL:
    """An AutoencoderKL from LDM-layout (or diffusers-layout) VAE weights, shaped by `config_dir`."""
    if not has_vae(checkpoint):
        raise ModelError(f"{name}: no VAE weights in this file (no decoder.conv_in.weight)")
    return _build(name, "VAE", lambda: AutoencoderKL.from_single_file(
        checkpoint, config=str(config_dir), subfolder=subfolder, torch_dtype=dtype, local_files_only=True))


def vae_like(reference: AutoencoderKL, checkpoint: dict[str, torch.Tensor], dtype: torch.dtype,
             name: str) -> AutoencoderKL:
    """A VAE with `reference`'s config (so its scaling factor) and the weights in `checkpoint`."""
    with tempfile.TemporaryDirectory(prefix="keypaint-vae-") as tmp:
        config = {k: v for k, v in dict(reference.config).items() if not k.startswith("_")}
        config["_class_name"] = "AutoencoderKL"
        (Path(tmp) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return vae_from_checkpoint(checkpoint, Path(tmp), None, dtype, name)


def pipeline_from_checkpoint(checkpoint: dict[str, torch.Tensor], detected: Detected, config_dir: Path, *,
                             dtype: torch.dtype, name: str, prediction_type: str | None = None,
                             vae: AutoencoderKL | None = None) -> Pipeline:
    """Build the pipeline for `detected` from an original-layout state dict and a diffusers config folder.

    `vae`, when given, is used instead of the checkpoint's own VAE (which may then be absent).
    """
    index = read_json(config_dir / "model_index.json")
    # 1. U-Net: converted from model.diffusion_model.*
    unet_keys = {k: v for k, v in checkpoint.items() if k.startswith(UNET_PREFIX)}
    unet = _build(name, "U-Net", lambda: UNet2DConditionModel.from_single_file(
        unet_keys, config=str(config_dir), subfolder="unet", torch_dtype=dtype, local_files_only=True))
    if unet.config.in_channels != (9 if detected.inpainting else 4):
        raise ModelError(f"{name}: config {config_dir.name} does not match this checkpoint's U-Net "
                         f"({unet.config.in_channels} vs {9 if detected.inpainting else 4} input channels)")
    # 2. VAE: first_stage_model.*
    if vae is None:
        vae = vae_from_checkpoint(checkpoint, config_dir, "vae", dtype, name)
    # 3. text encoders, each from its own key prefix, and their tokenizers
    components: dict[str, object] = {"unet": unet, "vae": vae}
    for i, prefix in enumerate(detected.text_prefixes):
        sub = "text_encoder" if i == 0 else f"text_encoder_{i + 1}"
        entry = index.get(sub) or [None, "CLIPTextModel"]
        components[sub] = _text_encoder(checkpoint, prefix, config_dir, sub, str(entry[1]), dtype, name)
        components[sub.replace("text_encoder", "tokenizer")] = load_tokenizer(
            config_dir, sub.replace("text_encoder", "tokenizer"))
    # 4. scheduler from the config folder
    components["scheduler"] = load_scheduler(config_dir, prediction_type)
    force_zeros = bool(index.get("force_zeros_for_empty_prompt", True))
    return assemble_pipeline(detected.kind, components, name=name, force_zeros_for_empty_prompt=force_zeros)
