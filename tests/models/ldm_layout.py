"""Write a diffusers pipeline as a single file in the original key layouts, for loader tests.

Adapted from diffusers' `scripts/convert_diffusers_to_original_stable_diffusion.py` and
`scripts/convert_diffusers_to_original_sdxl.py`, with the hard-coded block counts replaced by the U-Net's
config so toy-sized models convert too:

- SD 1.x: model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.text_model.*
- SD 2.x: ... cond_stage_model.model.* (OpenCLIP: resblocks, fused in_proj q/k/v, text_projection)
- SDXL:   ... conditioner.embedders.0.transformer.text_model.* and conditioner.embedders.1.model.*
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

from keypaint.models.loaded import ModelKind

_UNET_TOP = {  # diffusers -> original
    "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
    "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
}
_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _resnet(rest: str) -> str:
    for hf, sd in _RESNET:
        if rest.startswith(hf + "."):
            return sd + rest[len(hf):]
    raise KeyError(rest)


def unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel keys -> LDM `openaimodel.UNetModel` keys (no prefix)."""
    per = config["layers_per_block"] + 1  # resnets per down block, plus its downsampler slot
    up_attn = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out = {}
    for key, value in state.items():
        new = None
        for hf, sd in _UNET_TOP.items():
            if key.startswith(hf):
                new = sd + key[len(hf):]
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            i, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + i * per + j}.0.{_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"input_blocks.{1 + int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.0.{_resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            i = int(m[1])
            new = f"output_blocks.{i * per + per - 1}.{2 if i in up_attn else 1}.conv.{m[2]}"
        if new is None:
            raise KeyError(f"no LDM name for U-Net key {key}")
        out[new] = value
    return out


_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
             ("to_out.0.", "proj_out.")]


def vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL keys -> LDM `AutoencoderKL` keys (no prefix)."""
    n = len(config["block_out_channels"])
    out = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.",
                     lambda m: f"decoder.up.{n - 1 - int(m[1])}.block.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                     lambda m: f"decoder.up.{n - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for hf, sd in _VAE_ATTN:
                new = new.replace(hf, sd)
            if value.ndim == 2:  # the original uses 1x1 convolutions where diffusers uses linear layers
                value = value[:, :, None, None]
        out[new] = value
    return out


def _with_text_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys as `text_model.*` whether or not this transformers version flattens CLIPTextModel."""
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v
            for k, v in state.items()}


_OPENCLIP = [("text_model.encoder.layers.", "transformer.resblocks."), ("layer_norm1", "ln_1"),
             ("layer_norm2", "ln_2"), (".fc1.", ".c_fc."), (".fc2.", ".c_proj."), (".self_attn.", ".attn."),
             ("text_model.final_layer_norm.", "ln_final."),
             ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
             ("text_model.embeddings.position_embedding.weight", "positional_embedding")]


def openclip_to_ldm(state: dict[str, torch.Tensor],
                    projection: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """transformers CLIP text keys -> OpenCLIP keys: q/k/v fused into in_proj, text_projection transposed."""
    state = _with_text_model(state)
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := re.match(r"(.*)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            fused.setdefault(f"{m[1]}.self_attn.in_proj_{m[3]}", {})[m[2]] = value
            continue
        if key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()  # OpenCLIP computes x @ text_projection
            continue
        if key.endswith("position_ids"):
            continue
        out[key] = value
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    renamed = {}
    for key, value in out.items():
        for hf, sd in _OPENCLIP:
            key = key.replace(hf, sd)
        renamed[key] = value
    if projection is not None and "text_projection" not in renamed:
        renamed["text_projection"] = projection  # SD 2.x files carry one; diffusers does not use it
    return renamed


def pipeline_to_ldm(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline,
                    kind: ModelKind) -> dict[str, torch.Tensor]:
    """The whole pipeline as one original-layout state dict."""
    sd: dict[str, torch.Tensor] = {}
    unet = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    sd.update({f"model.diffusion_model.{k}": v for k, v in unet.items()})
    vae = vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config)
    sd.update({f"first_stage_model.{k}": v for k, v in vae.items()})
    text = pipe.text_encoder.state_dict()
    if kind is ModelKind.SD1:
        sd.update({f"cond_stage_model.transformer.{k}": v for k, v in _with_text_model(text).items()})
    elif kind is ModelKind.SD2:
        width = pipe.text_encoder.config.hidden_size
        projection = torch.randn(width, width, generator=torch.Generator().manual_seed(7))
        sd.update({f"cond_stage_model.model.{k}": v for k, v in openclip_to_ldm(text, projection).items()})
    else:
        sd.update({f"conditioner.embedders.0.transformer.{k}": v for k, v in _with_text_model(text).items()})
        text_2 = openclip_to_ldm(pipe.text_encoder_2.state_dict(), None)
        sd.update({f"conditioner.embedders.1.model.{k}": v for k, v in text_2.items()})
    return {k: v.detach().contiguous() for k, v in sd.items()}


def save_ldm(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline, kind: ModelKind, path: Path,
             metadata: dict[str, str] | None = None) -> Path:
    save_file(pipeline_to_ldm(pipe, kind), str(path), metadata=metadata)
    return path
