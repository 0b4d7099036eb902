"""Which Stable Diffusion a checkpoint is, told from its tensor names and shapes alone.

Single files carry no config, so the architecture is read off the original (LDM/SGM) key layout:

- `cond_stage_model.transformer.*`  CLIP ViT-L text encoder               -> SD 1.x
- `cond_stage_model.model.*`        OpenCLIP ViT-H text encoder           -> SD 2.x
- `conditioner.embedders.1.model.*` OpenCLIP bigG as the second encoder   -> SDXL
- `model.diffusion_model.input_blocks.0.0.weight` has 9 input channels   -> an inpainting U-Net

SD 2.x comes as a 512 px epsilon model and a 768 px v-prediction model with identical tensors. Like
diffusers' `infer_diffusers_model_type`, we assume v-prediction (SD 2.1 768) unless the checkpoint's
`global_step` is 875000 (the 512 base release); a sidecar `<name>.yaml` (the original LDM config, as A1111
reads it) or a `modelspec.prediction_type` in the safetensors metadata overrides that guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import SafetensorsHeader
from keypaint.models.loaded import ModelKind

PredictionType = Literal["epsilon", "v_prediction"]

UNET_PREFIX = "model.diffusion_model."
CONV_IN_KEY = UNET_PREFIX + "input_blocks.0.0.weight"
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
XL_TEXT_PREFIXES = ("conditioner.embedders.0.", "conditioner.embedders.1.")
SD2_BASE_GLOBAL_STEP = 875000  # the 512-base-ema release; diffusers uses the same test


@dataclass(frozen=True)
class Detected:
    """What a single-file checkpoint holds, and the shipped config folder that describes it."""

    kind: ModelKind
    inpainting: bool
    prediction_type: PredictionType
    config: str  # name of a folder under keypaint/models/configs

    @property
    def text_prefixes(self) -> tuple[str, ...]:
        """Key prefix of each text encoder's weights, in pipeline order (text_encoder, text_encoder_2)."""
        if self.kind is ModelKind.SDXL:
            return XL_TEXT_PREFIXES
        return ("cond_stage_model.",)


def detect_kind(keys: set[str] | dict[str, Any]) -> ModelKind | None:
    """The architecture family from key names only, or None when no known text encoder layout is present."""
    if any(k.startswith("conditioner.embedders.1.model.") for k in keys):
        return ModelKind.SDXL
    if any(k.startswith(SD2_TEXT_PREFIX) for k in keys):
        return ModelKind.SD2
    if any(k.startswith(SD1_TEXT_PREFIX) for k in keys):
        return ModelKind.SD1
    return None


def detect_checkpoint(header: SafetensorsHeader, name: str, sidecar: Path | None = None) -> Detected:
    """Detect the model in a validated safetensors header; ModelError for anything keypaint cannot run."""
    keys = header.tensors
    conv_in = header.shape(CONV_IN_KEY)
    if conv_in is None or len(conv_in) != 4:
        raise ModelError(f"{name}: no Stable Diffusion U-Net in this file (no {CONV_IN_KEY}); "
                         "is it a LoRA, a VAE or an embedding rather than a full model?")
    in_channels = conv_in[1]
    if in_channels not in (4, 9):
        raise ModelError(f"{name}: U-Net with {in_channels} input channels is not supported "
                         "(4 = text-to-image, 9 = inpainting)")
    if "edm_mean" in keys:
        raise ModelError(f"{name}: Playground v2.5 checkpoints are not supported")
    kind = detect_kind(keys)
    if kind is None:
        if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
            raise ModelError(f"{name}: SDXL refiner checkpoints are not supported")
        raise ModelError(f"{name}: no text encoder weights found (cond_stage_model.* or conditioner.*); "
                         "keypaint needs full SD 1.x, 2.x or SDXL checkpoints")

    inpainting = in_channels == 9
    prediction = _prediction_type(header, sidecar)
    if kind is ModelKind.SD1:
        config = "sd15-inpainting" if inpainting else "sd15"
    elif kind is ModelKind.SDXL:
        config = "sdxl-inpainting" if inpainting else "sdxl-base"
    elif inpainting:
        config = "sd2-inpainting"
    else:
        if prediction is None:
            step = header.metadata.get("global_step")
            prediction = "epsilon" if step == str(SD2_BASE_GLOBAL_STEP) else "v_prediction"
        config = "sd21" if prediction == "v_prediction" else "sd2-base"
    return Detected(kind=kind, inpainting=inpainting, prediction_type=prediction or "epsilon", config=config)


def _prediction_type(header: SafetensorsHeader, sidecar: Path | None) -> PredictionType | None:
    """An explicit statement of the parameterization, if the checkpoint or a sidecar YAML makes one."""
    if sidecar is not None and sidecar.is_file():
        try:
            cfg = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
            params = cfg["model"]["params"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
            why = e.__class__.__name__
            raise ModelError(f"{sidecar.name}: cannot read this model config ({why})") from None
        return "v_prediction" if params.get("parameterization") == "v" else "epsilon"
    spec = header.metadata.get("modelspec.prediction_type", "").lower()
    if spec in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if spec in ("epsilon", "eps"):
        return "epsilon"
    return None


def kind_from_diffusers(unet_config: dict[str, Any], text_encoder_class: str | None) -> ModelKind:
    """The family of a diffusers folder, from its U-Net config and its text encoder's class name."""
    if text_encoder_class == "BertModel":
        return ModelKind.KEYPAINT
    if unet_config.get("addition_embed_type") == "text_time":
        return ModelKind.SDXL
    context = unet_config.get("cross_attention_dim")
    if context == 768:
        return ModelKind.SD1
    if context == 1024:
        return ModelKind.SD2
    # Toy-sized models (tests): SD 2.x U-Nets use linear projections in their transformers, SD 1.x do not.
    return ModelKind.SD2 if unet_config.get("use_linear_projection") else ModelKind.SD1
