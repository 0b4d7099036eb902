"""The latent space: what the VAE keeps of a picture, and what denoising in it saves.

Rombach et al. 2022 run diffusion on z = E(x), a 4 x H/8 x W/8 latent, instead of the 3 x H x W picture:
48x fewer numbers, and a U-Net that sees 64x fewer positions. `step_costs` measures that claim on the
model at hand: the same U-Net architecture once at the latent size and once built for pixels.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from keypaint.explain.figures import decode_latents, encode_image, latent_view, save_grid
from keypaint.models.loaded import LoadedModel


@dataclass
class RoundTrip:
    """A picture through the VAE: x -> z = E(x) -> D(z)."""

    original: Image.Image = field(repr=False)
    latents: torch.Tensor = field(repr=False)  # (1, C, h, w), scaled
    reconstruction: Image.Image = field(repr=False)
    compression: float  # numbers in the picture / numbers in the latent: 3HW / (C h w)
    psnr: float  # dB between original and reconstruction, 8-bit pixels


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR = 10 log10(255^2 / MSE) over all 8-bit RGB values; inf for identical pictures."""
    diff = np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def roundtrip(model: LoadedModel, image: Image.Image, size: tuple[int, int] | None = None) -> RoundTrip:
    width, height = size or (model.native_size, model.native_size)
    original = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    latents = encode_image(model, original, width, height)
    [reconstruction] = decode_latents(model, latents)
    compression = 3 * width * height / latents[0].numel()
    return RoundTrip(original, latents, reconstruction, compression, psnr(original, reconstruction))


def save_roundtrip(result: RoundTrip, path: Path) -> Path:
    """original | latent (first 3 channels) | reconstruction | |difference| x 4."""
    diff = np.abs(np.asarray(result.original, np.int16) - np.asarray(result.reconstruction, np.int16))
    diff_image = Image.fromarray(np.clip(diff * 4, 0, 255).astype(np.uint8))
    c, h, w = result.latents.shape[1:]
    row = [result.original, latent_view(result.latents[0], result.original.size), result.reconstruction,
           diff_image]
    labels = [f"x {result.original.width}x{result.original.height}x3", f"z = E(x) {w}x{h}x{c}",
              f"D(z), PSNR {result.psnr:.1f} dB", "|x - D(z)| x 4"]
    return save_grid([row], path, col_labels=labels, cell_inches=1.8,
                     title=f"VAE round trip: {result.compression:.0f}x fewer numbers in the latent")


@dataclass
class StepCost:
    """One network evaluation: its input, FLOPs (multiply-add = 2) and measured time."""

    name: str
    shape: tuple[int, ...]  # input tensor shape
    flops: int
    seconds: float | None  # median wall time; None where it was too big to time


def _unet_inputs(config: Any, batch: int, channels: int, height: int, width: int, seq: int,
                 device: torch.device | str, dtype: torch.dtype) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sample = torch.randn(batch, channels, height, width, device=device, dtype=dtype)
    t = torch.full((batch,), 500, device=device)
    context = torch.randn(batch, seq, config.cross_attention_dim, device=device, dtype=dtype)
    kwargs: dict[str, Any] = {"return_dict": False}
    if config.addition_embed_type == "text_time":  # SDXL: pooled text + 6 size/crop numbers
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
                                       "time_ids": torch.zeros(batch, 6, device=device, dtype=dtype)}
    return (sample, t, context), kwargs


def _flops(module_cls: type, config: dict[str, Any], run: Any) -> int:
    """FLOPs of `run(module)` for a copy of the architecture on the meta device: shapes only, no memory.

    On meta, attention decomposes into matmuls that FlopCounterMode counts; a CPU run would hide them in a
    fused kernel it has no formula for.
    """
    with torch.device("meta"):
        module = module_cls.from_config(config)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        run(module, "meta")
    return int(counter.get_total_flops())


def _seconds(module: torch.nn.Module, run: Any, device: torch.device, repeats: int) -> float:
    """Median wall time of `run(module)` after one warm-up call."""
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run(module, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_costs(model: LoadedModel, height: int, width: int, *, batch: int = 2, repeats: int = 3,
               max_timed_gflops: float = 2000.0) -> list[StepCost]:
    """One denoising step (a U-Net call on `batch` = 2 for guidance) in latent and in pixel space, and the
    VAE decode that latent diffusion pays once per picture. Pixel space uses the same U-Net config with
    3 channels at the full size, random weights (cost does not depend on the weights)."""
    pipe = model.pipe
    unet, vae = pipe.unet, pipe.vae
    device, dtype = unet.device, unet.dtype
    factor = pipe.vae_scale_factor
    latent_c, latent_h, latent_w = vae.config.latent_channels, height // factor, width // factor
    seq = int(pipe.tokenizer.model_max_length)
    latent_config = dict(unet.config)
    pixel_config = {**latent_config, "in_channels": 3, "out_channels": 3, "sample_size": height}

    def unet_run(channels: int, h: int, w: int) -> Any:
        def run(module: torch.nn.Module, on: torch.device | str) -> None:
            args, kwargs = _unet_inputs(module.config, batch, channels, h, w, seq, on, dtype)
            module(*args, **kwargs)
        return run

    def decode_run(module: torch.nn.Module, on: torch.device | str) -> None:
        module.decode(torch.randn(1, latent_c, latent_h, latent_w, device=on, dtype=dtype))

    latent_run, pixel_run = unet_run(latent_c, latent_h, latent_w), unet_run(3, height, width)
    rows = [
        StepCost("U-Net, latent", (batch, latent_c, latent_h, latent_w),
                 _flops(UNet2DConditionModel, latent_config, latent_run),
                 _seconds(unet, latent_run, device, repeats)),
        StepCost("U-Net, pixels", (batch, 3, height, width),
                 _flops(UNet2DConditionModel, pixel_config, pixel_run), None),
        StepCost("VAE decode", (1, latent_c, latent_h, latent_w),
                 _flops(AutoencoderKL, dict(vae.config), decode_run),
                 _seconds(vae, decode_run, device, repeats)),
    ]
    if rows[1].flops / 1e9 <= max_timed_gflops:
        pixel_unet = UNet2DConditionModel.from_config(pixel_config).to(device).eval()
        if dtype != torch.float32:
            pixel_unet.to(dtype)
        rows[1].seconds = _seconds(pixel_unet, pixel_run, device, max(1, repeats // 2))
        del pixel_unet
    return rows


def cost_table(rows: list[StepCost]) -> list[list[str]]:
    """Rows of text for printing: name, input, GFLOPs, ms, and each against the latent U-Net step."""
    base = rows[0]
    table = []
    for row in rows:
        ms = "not timed" if row.seconds is None else f"{row.seconds * 1e3:,.1f}"
        ratio_time = "" if row.seconds is None or not base.seconds else f"{row.seconds / base.seconds:,.1f}x"
        table.append([row.name, "x".join(map(str, row.shape)), f"{row.flops / 1e9:,.2f}", ms,
                      f"{row.flops / base.flops:,.1f}x", ratio_time])
    return table


COST_HEADER = ["one call", "input", "GFLOPs", "ms", "FLOPs ratio", "time ratio"]  # ratios to "U-Net, latent"
