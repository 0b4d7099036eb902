"""Full fine-tuning: every weight of the U-Net, written as a whole diffusers model folder.

Meant for small bases such as the built-in model (13 M U-Net parameters): fp32 weights, their gradients
and AdamW's two moments take 16 bytes a parameter, so a U-Net above `FULL_MAX_UNET_BYTES` of fp16 weights
(SD 1.x: 860 M parameters, 1.7 GB) is refused from its safetensors headers before anything loads. The
learning rate is lower (2e-5) than a LoRA's, as every weight moves. The folder (default
`<home>/models/TOKEN`, so `--model TOKEN` finds it) is the base pipeline with the trained U-Net, in fp16
safetensors shards of at most 15 MB, staged beside its destination and renamed into place, never over an
existing folder; the U-Net shards' headers carry the `keypaint` metadata.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from keypaint.finetune.config import FinetuneError
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.loaded import LoadedModel

FULL_MAX_UNET_BYTES = 1_500_000_000  # fp16 bytes of U-Net weights above which --method full is refused
MAX_SHARD = "15MB"
WEIGHT_DECAY = 1e-2


def unet_bytes(path: Path) -> int | None:
    """fp16 bytes of the U-Net weights of a model file or diffusers folder, from safetensors headers alone;
    None when that cannot be told without loading (pickles, no safetensors)."""
    prefix = ""
    if path.is_dir():
        unet = path / "unet"
        index = unet / "diffusion_pytorch_model.safetensors.index.json"
        if index.is_file():
            shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()
            files = sorted({unet / name for name in shards})
        else:
            names = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
            files = [unet / name for name in names if (unet / name).is_file()][:1]
    elif path.suffix.lower() == ".safetensors":
        files, prefix = [path], "model.diffusion_model."
    else:
        return None
    if not files:
        return None
    count = sum(
        math.prod(info.shape)
        for file in files
        for name, info in read_safetensors_header(file).tensors.items()
        if name.startswith(prefix)
    )
    return 2 * count


def check_base(path: Path) -> None:
    """FinetuneError when the base's U-Net is too large to fine-tune whole (when its size can be told)."""
    size = unet_bytes(path)
    if size is not None and size > FULL_MAX_UNET_BYTES:
        raise FinetuneError(
            f"--method full: {path.name} has {size / 1e9:.1f} GB of U-Net weights (fp16), over the "
            f"{FULL_MAX_UNET_BYTES / 1e9:.1f} GB keypaint trains whole; use --method lora, dora, loha or lokr"
        )


def unfreeze(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every U-Net weight trainable, fp32."""
    unet.requires_grad_(True)
    params = list(unet.parameters())
    for p in params:
        p.data = p.data.float()
    return params


def unet_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The U-Net's weights, fp32 on the CPU (checkpoints, and the copy given back after training)."""
    return {k: v.detach().float().cpu().clone() for k, v in unet.state_dict().items()}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_model_folder(model: LoadedModel, dest: Path, metadata: dict[str, str]) -> None:
    """The pipeline with its trained U-Net as a diffusers folder at `dest` (which must not exist)."""
    from keypaint.builtin.export import export_model

    if dest.exists():
        raise FinetuneError(f"{dest} appeared while training; keypaint never overwrites it")
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    trained = LoadedModel(name=dest.name, kind=model.kind, pipe=copy.deepcopy(model.pipe),
                          vocabulary=model.vocabulary)
    export_model(trained, staging, dtype=torch.float16, max_shard_size=MAX_SHARD)
    for shard in sorted((staging / "unet").glob("*.safetensors")):
        save_file(load_file(shard), str(shard), metadata={"format": "pt", **metadata})
    try:
        os.rename(staging, dest)  # refused if a folder with files appeared there meanwhile
    except OSError:
        raise FinetuneError(f"{dest} appeared while training; the model is kept in {staging}") from None
