"""Tiny random ControlNets for tests: made from a tiny model's U-Net, saved as diffusers folders and as
single files in sd-webui-controlnet's key layouts."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import ControlNetModel
from safetensors.torch import save_file

from keypaint.models.loaded import LoadedModel
from tests.models.ldm_layout import unet_to_ldm


def tiny_controlnet(model: LoadedModel, seed: int = 0) -> ControlNetModel:
    """`ControlNetModel.from_unet` with its zero convolutions drawn at random, so that it steers."""
    net = ControlNetModel.from_unet(model.pipe.unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                                "controlnet_cond_embedding")):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return net.eval()


def controlnet_to_ldm(net: ControlNetModel) -> dict[str, torch.Tensor]:
    """diffusers ControlNetModel keys -> sd-webui-controlnet's (`input_blocks.`, `zero_convs.` ...)."""
    encoder, out = {}, {}
    for key, value in net.state_dict().items():
        value = value.contiguous()
        if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
            out[f"zero_convs.{m[1]}.0.{m[2]}"] = value
        elif key.startswith("controlnet_mid_block."):
            out["middle_block_out.0." + key.removeprefix("controlnet_mid_block.")] = value
        elif key.startswith("controlnet_cond_embedding.conv_in."):
            out["input_hint_block.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("controlnet_cond_embedding.conv_out."):
            out["input_hint_block.14." + key.rsplit(".", 1)[1]] = value
        elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.*)", key):
            out[f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"] = value
        else:
            encoder[key] = value
    out.update(unet_to_ldm(encoder, net.config))
    return out


def save_single_file(net: ControlNetModel, path: Path, *, prefix: str = "control_model.") -> Path:
    """The ControlNet as one .safetensors file in sd-webui-controlnet's layout (`prefix` "": plain keys)."""
    save_file({prefix + k: v for k, v in controlnet_to_ldm(net).items()}, str(path))
    return path
