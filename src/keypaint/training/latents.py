"""Encode the training pictures with the trained VAE once, before U-Net training.

The cache keeps each picture's posterior mean and std (fp16), so every U-Net step still draws a fresh
latent sample, as SD's training does, without running the encoder again.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL
from safetensors import safe_open
from safetensors.torch import save_file

from keypaint.data.captions import augment
from keypaint.data.folder import Record
from keypaint.training.data import load_pixels, to_model_range


def cache_key(records: list[Record], vae_dir: Path) -> str:
    """Changes when the pictures or the VAE weights change."""
    h = hashlib.sha256()
    for r in records:
        h.update(str(r.path).encode())
    for f in sorted(vae_dir.glob("*.safetensors")):
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        h.update(f.read_bytes()[-4096:])
    return h.hexdigest()


def read_cache(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std) from `path` if it exists and was made from the same pictures and VAE."""
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        if (f.metadata() or {}).get("key") != key:
            return None
        return f.get_tensor("mean"), f.get_tensor("std")


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, records: list[Record], size: int, device: torch.device,
                   batch: int = 256, workers: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior (mean, std) of every record's picture, fp16, on the CPU."""
    pixels = load_pixels(records, size, workers)
    means, stds = [], []
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                 enabled=False)
    for i in range(0, len(pixels), batch):
        with autocast:
            dist = vae.encode(to_model_range(pixels[i:i + batch].to(device))).latent_dist
        means.append(dist.mean.float().half().cpu())
        stds.append(dist.std.float().half().cpu())
    return torch.cat(means), torch.cat(stds)


def write_cache(path: Path, key: str, mean: torch.Tensor, std: torch.Tensor) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(tmp), metadata={"key": key})
    tmp.replace(path)


def cached_latents(run_dir: Path, vae_dir: Path, accelerator: Accelerator, records: list[Record],
                   vae: AutoencoderKL, image_size: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pictures' posterior (mean, std) on the device, from RUN/latents.safetensors; the main process
    encodes them first when that cache is missing or stale (other pictures or another VAE)."""
    path, key = run_dir / "latents.safetensors", cache_key(records, vae_dir)
    if accelerator.is_main_process and read_cache(path, key) is None:
        t0 = time.perf_counter()
        mean, std = encode_latents(vae.to(accelerator.device), records, image_size, accelerator.device,
                                   workers=workers)
        write_cache(path, key, mean, std)
        accelerator.print(f"encoded {len(records)} latents in {time.perf_counter() - t0:.0f} s", flush=True)
    accelerator.wait_for_everyone()
    cached = read_cache(path, key)
    assert cached is not None
    return cached[0].to(accelerator.device), cached[1].to(accelerator.device)


def draw_batch(mean: torch.Tensor, std: torch.Tensor, records: list[Record], scaling: float, batch_size: int,
               gen: torch.Generator, rng: random.Random, *, caption_drop: float, style_drop: float,
               all_tags: float) -> tuple[torch.Tensor, list[str]]:
    """A training batch: fresh posterior samples z0 = (mu + sigma e) * scaling_factor (scaled to unit
    variance, as SD does) and the pictures' captions, varied by `keypaint.data.captions.augment`."""
    idx = torch.randint(len(mean), (batch_size,), generator=gen)
    captions = [augment(records[i], rng, caption_drop, style_drop=style_drop, all_tags=all_tags)
                for i in idx.tolist()]
    idx = idx.to(mean.device)
    z0 = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, device=mean.device)) * scaling
    return z0, captions
