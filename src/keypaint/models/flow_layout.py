"""Which SD3/SD3.5 or Flux.1 a file holds, told from its tensor names and shapes alone (no PyTorch).

The same transformer is shared in three key layouts:

- BFL / Stability's original names: Flux `double_blocks.N.*` and `single_blocks.N.*` (dev has
  `guidance_in.*`, schnell does not); SD3 `joint_blocks.N.{x_block,context_block}.*` (3.5 medium adds
  `x_block.attn2.*`, 3.5 large has 38 blocks; both 3.5s have `ln_q` query norms).
- ComfyUI's whole checkpoints: the same names under `model.diffusion_model.`, with the text encoders under
  `text_encoders.{clip_l,clip_g,t5xxl}.transformer.*` and the VAE under `first_stage_model.` or `vae.`.
- diffusers' names: `transformer_blocks.N.attn.add_q_proj.*`, plus `single_transformer_blocks.N.*` (Flux)
  or `pos_embed.pos_embed` (SD3).

Separate text-encoder files (ComfyUI's `clip_l.safetensors`, `clip_g.safetensors`, `t5xxl_*.safetensors`)
carry transformers' own names (`text_model.*`, `encoder.block.N.*`) and are told apart by width.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from keypaint.errors import ModelError
from keypaint.models.loaded import ModelKind

Layout = Literal["original", "comfyui", "diffusers"]
Encoder = Literal["clip_l", "clip_g", "t5xxl"]
COMFY_PREFIX = "model.diffusion_model."
ENCODER_PREFIX = "text_encoders.{}.transformer."
VAE_PREFIXES = ("first_stage_model.", "vae.")
FP8_DTYPES = ("F8_E4M3", "F8_E5M2")
_BLOCK = re.compile(r"^(?:model\.diffusion_model\.)?(joint_blocks|double_blocks|transformer_blocks)\.(\d+)\.")
# the encoders each family reads, in pipeline order (text_encoder, text_encoder_2, text_encoder_3)
ENCODERS: dict[ModelKind, tuple[Encoder, ...]] = {
    ModelKind.SD3: ("clip_l", "clip_g", "t5xxl"),
    ModelKind.FLUX: ("clip_l", "t5xxl"),
}
# hidden widths of the real encoders (a separate file is checked against them)
ENCODER_WIDTH: dict[Encoder, int] = {"clip_l": 768, "clip_g": 1280, "t5xxl": 4096}


@dataclass(frozen=True)
class FlowDetected:
    """What an SD3 or Flux file holds, and the shipped config folder that describes the real model."""

    kind: ModelKind
    config: str  # flux-dev, flux-schnell, sd3-medium, sd35-medium or sd35-large
    layout: Layout
    encoders: tuple[Encoder, ...]  # text encoders inside the file
    has_vae: bool
    fp8: bool  # some weights are stored as 8-bit floats (upcast on load)
    inpainting: bool = False
    prediction_type: str = "flow"

    @property
    def prefix(self) -> str:
        return COMFY_PREFIX if self.layout == "comfyui" else ""

    @property
    def missing_encoders(self) -> tuple[Encoder, ...]:
        return tuple(e for e in ENCODERS[self.kind] if e not in self.encoders)


def _blocks(keys: Iterable[str], family: str) -> int:
    numbers = {int(m.group(2)) for k in keys if (m := _BLOCK.match(k)) and m.group(1) == family}
    return max(numbers) + 1 if numbers else 0


def detect_flow(tensors: Mapping[str, object], name: str,
                dtypes: Mapping[str, str] | None = None) -> FlowDetected | None:
    """The SD3/Flux transformer in a file's keys, or None when there is none; ModelError for mixed files."""
    keys = set(tensors)
    prefix = COMFY_PREFIX if any(k.startswith(COMFY_PREFIX) for k in keys) else ""
    flux = f"{prefix}double_blocks.0.img_attn.qkv.weight" in keys
    sd3 = f"{prefix}joint_blocks.0.x_block.attn.qkv.weight" in keys
    layout: Layout = "comfyui" if prefix else "original"
    if not (flux or sd3) and "transformer_blocks.0.attn.add_q_proj.weight" in keys:
        layout = "diffusers"
        flux = any(k.startswith("single_transformer_blocks.") for k in keys)
        sd3 = not flux and "pos_embed.proj.weight" in keys
    if not (flux or sd3):
        return None
    if flux and sd3:
        raise ModelError(f"{name}: holds both a Flux and an SD3 transformer (one model per file)")
    if prefix and f"{prefix}input_blocks.0.0.weight" in keys:
        raise ModelError(f"{name}: holds both a U-Net and a flow transformer (one model per file)")
    if flux:
        kind, config = ModelKind.FLUX, _flux_config(keys, layout, name)
    else:
        kind, config = ModelKind.SD3, _sd3_config(keys, layout)
    encoders = tuple(e for e in ENCODERS[kind] if any(k.startswith(ENCODER_PREFIX.format(e)) for k in keys))
    has_vae = any(f"{p}decoder.conv_in.weight" in keys for p in VAE_PREFIXES)
    fp8 = dtypes is not None and any(d in FP8_DTYPES for d in dtypes.values())
    return FlowDetected(kind, config, layout, encoders, has_vae, fp8)


def _flux_config(keys: set[str], layout: Layout, name: str) -> str:
    if layout == "diffusers":
        guided = any(k.startswith("time_text_embed.guidance_embedder.") for k in keys)
        return "flux-dev" if guided else "flux-schnell"
    prefix = COMFY_PREFIX if layout == "comfyui" else ""
    if any(k.startswith(f"{prefix}distilled_guidance_layer.") for k in keys):
        raise ModelError(f"{name}: a Chroma checkpoint; keypaint reads Flux.1 dev and schnell")
    return "flux-dev" if f"{prefix}guidance_in.in_layer.weight" in keys else "flux-schnell"


def _sd3_config(keys: set[str], layout: Layout) -> str:
    if layout == "diffusers":
        depth = _blocks(keys, "transformer_blocks")
        dual = any(".attn2." in k for k in keys if k.startswith("transformer_blocks."))
        qk_norm = "transformer_blocks.0.attn.norm_q.weight" in keys
    else:
        depth = _blocks(keys, "joint_blocks")
        dual = any(".x_block.attn2." in k for k in keys)
        qk_norm = any(k.endswith("joint_blocks.0.x_block.attn.ln_q.weight") for k in keys)
    if depth >= 38:
        return "sd35-large"
    if dual or qk_norm:
        return "sd35-medium"
    return "sd3-medium"


def encoder_of(tensors: Mapping[str, tuple[int, ...]]) -> Encoder | Literal["clip"] | None:
    """Which text encoder a separate file holds (transformers' key names), told by its layout and width:
    "clip" for a CLIP of neither real width (tiny test models), None when it is no CLIP or T5 at all."""
    for key, shape in tensors.items():
        if key.endswith("embeddings.token_embedding.weight") and len(shape) == 2:
            widths = {w: e for e, w in ENCODER_WIDTH.items() if e != "t5xxl"}
            return widths.get(shape[1], "clip")
    for key, shape in tensors.items():
        if key.endswith(("shared.weight", "encoder.embed_tokens.weight")) and len(shape) == 2:
            return "t5xxl"
    return None
