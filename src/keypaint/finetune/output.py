"""What a run writes: its settings for the metadata, and the output file, never over an existing one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method


def settings_of(cfg: FinetuneConfig, resolution: int) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "lr": cfg.learning_rate,
        "resolution": resolution,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "min_snr_gamma": cfg.min_snr_gamma,
        "timesteps": [cfg.min_timestep, cfg.max_timestep],
    }
    if cfg.method.makes_lora:
        settings.update(rank=cfg.lora_rank, alpha=cfg.lora_rank, targets=cfg.lora_targets)
    if cfg.method.trains_vectors:
        settings.update(vectors=cfg.vector_count, init_word=cfg.start_word)
    if cfg.method is Method.PIVOTAL:
        settings.update(embedding_lr=cfg.embedding_learning_rate)
    if cfg.method is Method.DREAMBOOTH:
        settings.update(
            class_prompt=cfg.class_prompt, class_images=cfg.class_images, prior_weight=cfg.prior_weight
        )
    return settings


def device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def write_new_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file at `path` only if nothing is there: temp file, then a hard link (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    try:
        os.link(tmp, path)  # fails if `path` exists: never replaces a file
    except FileExistsError:
        raise FinetuneError(f"{path} appeared while training; the result is kept in {tmp}") from None
    except OSError:
        with tmp.open("rb") as src, path.open("xb") as dst:  # file systems without hard links
            shutil.copyfileobj(src, dst)
    tmp.unlink()
