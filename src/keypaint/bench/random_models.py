"""Random-weight pipelines in the exact shapes of SD 1.5 and SDXL, from the configs keypaint ships.

A step costs the same whatever the weights hold, so a bench needs no checkpoint download: the U-Net, VAE
and CLIP text encoders are built from `models/configs/<name>/` and initialised on the target device (GPU
initialisation of SDXL's 2.6 B parameters takes seconds; the CPU would take minutes).
"""

from __future__ import annotations

from typing import Any

import torch

from keypaint.models.loaded import ModelKind

# bench work name -> shipped config folder
CONFIGS = {"sd15": "sd15", "sdxl": "sdxl-base"}


def random_pipeline(config: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Any:
    """A StableDiffusion(XL)Pipeline of random weights shaped like the shipped config `config`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from keypaint.models.assemble import assemble_pipeline
    from keypaint.models.configs import load_scheduler, load_tokenizer, shipped_config

    folder = shipped_config(config)
    kind = ModelKind.SDXL if (folder / "text_encoder_2").is_dir() else ModelKind.SD1
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        parts: dict[str, Any] = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder / "unet"))),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder / "vae"))),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(str(folder / "text_encoder"))),
        }
        if kind.is_xl:
            config2 = CLIPTextConfig.from_pretrained(str(folder / "text_encoder_2"))
            parts["text_encoder_2"] = CLIPTextModelWithProjection(config2)
    for module in parts.values():
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    parts["tokenizer"] = load_tokenizer(folder)
    if kind.is_xl:
        parts["tokenizer_2"] = load_tokenizer(folder, "tokenizer_2")
    parts["scheduler"] = load_scheduler(folder)
    pipe = assemble_pipeline(kind, parts, name=f"random-{config}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_random_pipeline(config: str, device: torch.device, dtype: torch.dtype) -> Any:
    """The tiny real-class pipeline of the same family (64 px), for checking the bench's code path."""
    from keypaint.models.tiny import tiny_pipeline

    kind = ModelKind.SDXL if config.startswith("sdxl") else ModelKind.SD1
    pipe = tiny_pipeline(kind)
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
