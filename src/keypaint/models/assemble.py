"""Putting loaded components into the one pipeline type keypaint paints with.

Whatever a model came as (an inpainting pipeline folder, a single file, a folder with a safety checker),
it ends as a `StableDiffusionPipeline` (SD 1.x / 2.x / keypaint) or `StableDiffusionXLPipeline` holding
all its components with no safety checker; img2img and inpainting reuse these components.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from keypaint.errors import ModelError
from keypaint.models.loaded import ModelKind

Pipeline = StableDiffusionPipeline | StableDiffusionXLPipeline
_SD_PARTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
_XL_PARTS = (*_SD_PARTS, "text_encoder_2", "tokenizer_2")


def assemble_pipeline(kind: ModelKind, components: dict[str, Any], *, name: str,
                      force_zeros_for_empty_prompt: bool = True) -> Pipeline:
    """A text-to-image pipeline of `kind` from `components` (extra entries are ignored)."""
    parts = _XL_PARTS if kind.is_xl else _SD_PARTS
    missing = [p for p in parts if components.get(p) is None]
    if missing:
        raise ModelError(f"{name}: the model has no {', '.join(missing)}")
    chosen = {p: components[p] for p in parts}
    if kind.is_xl:
        # No invisible watermark: keypaint records provenance in the image metadata instead.
        return StableDiffusionXLPipeline(**chosen, force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
                                         add_watermarker=False)
    return StableDiffusionPipeline(**chosen, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def check_complete(module: torch.nn.Module, name: str, part: str) -> None:
    """Fail if loading left any weight of `part` unset (still on the meta device)."""
    for param_name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.device.type == "meta":
            raise ModelError(f"{name}: the checkpoint has no weights for the {part} ({param_name} missing)")
