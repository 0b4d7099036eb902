"""LoRA layers on the U-Net with peft, saved in the kohya layout A1111, ComfyUI and diffusers all load.

The default targets ("all") are what kohya's `networks.lora` trains in a U-Net: every linear (and 1x1
convolution) of its transformer blocks: attention q/k/v/out, the feed-forward layers and proj_in/proj_out.
"attention" keeps to the attention layers, "cross-attention" to those that read the prompt (attn2). With
alpha = rank the update W + B A is applied at scale 1, and `.alpha` is written so other tools agree.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

ADAPTER = "keypaint-finetune"
TARGETS: dict[str, str | list[str]] = {  # peft target_modules: module-name suffixes, or a full-match regex
    "all": ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"],
    "attention": r".*attn[12]\.(to_q|to_k|to_v|to_out\.0)",
    "cross-attention": r".*attn2\.(to_q|to_k|to_v|to_out\.0)",
}


def add_lora(
    unet: torch.nn.Module, rank: int, seed: int, targets: str | list[str] = "all", *, use_dora: bool = False
) -> list[torch.nn.Parameter]:
    """Freeze the U-Net and add LoRA layers (DoRA's with `use_dora`); returns them, fp32.

    B starts at 0, so training starts at the base model; A is drawn from N(0, 1/rank^2) (peft's "gaussian"
    init) with a generator of its own, so the same seed gives the same run. `targets`: a key of TARGETS,
    peft's full-match regex, or module-name suffixes. DoRA's magnitudes start as the weights' row norms.
    """
    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights="gaussian", use_dora=use_dora,
        target_modules=TARGETS.get(targets, targets) if isinstance(targets, str) else targets,
    )
    unet.add_adapter(config, adapter_name=ADAPTER)  # the only active adapter now; a painter's stay loaded
    unet.enable_adapters()  # layers a painter switched off (a request without LoRAs) would skip this one
    generator = torch.Generator().manual_seed(seed)
    params = []
    for name, p in unet.named_parameters():
        if not p.requires_grad:
            continue
        if ".lora_A." in name:
            p.data = torch.randn(p.shape, generator=generator).div(rank).to(p.device)
        else:
            p.data = p.data.float()  # trained in fp32 whatever the base weights' dtype
        params.append(p)
    return params


def lora_state(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The adapter's weights in peft's layout (`...to_q.lora_A.weight`, `...hada_w1_a`), fp32 on the CPU:
    what checkpoints hold."""
    state = get_peft_model_state_dict(unet, adapter_name=ADAPTER)
    return {k: v.detach().float().cpu().contiguous() for k, v in state.items()}


def load_lora_state(unet: UNet2DConditionModel, state: dict[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    parts = ("lora_", "hada_", "lokr_")
    missing = [k for k in getattr(result, "missing_keys", []) if any(p in k for p in parts)]
    if missing:
        raise ValueError(f"checkpoint lacks adapter weights {missing[:3]}")


def kohya_state(
    state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float16
) -> dict[str, torch.Tensor]:
    """peft keys -> `lora_unet_down_blocks_1_..._to_q.lora_down.weight` / `.lora_up.weight` / `.alpha`."""
    kohya = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in state.items()})
    return {k: (v.float() if k.endswith(".alpha") else v.to(dtype)).contiguous() for k, v in kohya.items()}


def remove_lora(unet: UNet2DConditionModel) -> None:
    """Take the training adapter off again (the model is shared with whoever loaded it)."""
    unet.delete_adapters(ADAPTER)
