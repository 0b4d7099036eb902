"""The forward chain on a real picture: x_t from the closed form at chosen steps, in latents and pixels.

Latent diffusion (Rombach et al. 2022) runs the chain of Ho et al. 2020 on z = E(x), not on pixels: the
strip shows z_t as the U-Net sees it (first three latent channels) and D(z_t), what it looks like decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from keypaint.core.sampling_math import closed_form, cpu_generators, start_noise
from keypaint.explain.figures import (
    decode_latents,
    encode_image,
    latent_view,
    save_grid,
    save_npz,
    to_array,
)
from keypaint.explain.schedules import alpha_bar, check_timesteps, training_scheduler
from keypaint.models.loaded import LoadedModel

DEFAULT_STEPS = (0, 50, 100, 200, 300, 500, 700, 1000)


@dataclass
class ForwardChain:
    """x_t of one picture at chosen steps t (one shared eps, so the strip shows one path)."""

    timesteps: list[int]
    alpha_bars: list[float]
    latents: torch.Tensor = field(repr=False)  # (n, C, h, w): z_t, scaled latents
    decoded: list[Image.Image] = field(repr=False)  # D(z_t)
    source: Image.Image = field(repr=False)  # the picture x_0 came from, at the model's size


def forward_chain(
    model: LoadedModel,
    image: Image.Image,
    timesteps: list[int],
    *,
    seed: int,
    scheduler_config: dict[str, Any],
    size: tuple[int, int] | None = None,
) -> ForwardChain:
    """Encode `image`, noise it to each t with the closed form, decode each z_t."""
    scheduler = training_scheduler(scheduler_config)
    check_timesteps(timesteps, scheduler)
    width, height = size or (model.native_size, model.native_size)
    x0 = encode_image(model, image, width, height)
    # eps ~ N(0, I) drawn on the CPU from the seed, as the Painter draws x_T
    eps = start_noise(cpu_generators([seed]), tuple(x0.shape[1:]))
    bars = [alpha_bar(scheduler, t) for t in timesteps]
    # x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps  (Ho et al. 2020, eq. 4)
    latents = torch.cat([closed_form(x0, eps, abar) for abar in bars])
    return ForwardChain(
        timesteps=list(timesteps),
        alpha_bars=bars,
        latents=latents,
        decoded=decode_latents(model, latents),
        source=image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS),
    )


def save_forward(chain: ForwardChain, path: Path, npz: Path | None = None) -> list[Path]:
    """The strip (latent row, decoded row) and, if asked, the raw z_t as NPZ."""
    size = chain.decoded[0].size
    labels = [f"t={t}\nᾱ={abar:.3f}" for t, abar in zip(chain.timesteps, chain.alpha_bars, strict=True)]
    rows = [[latent_view(z, size) for z in chain.latents], chain.decoded]
    written = [save_grid(rows, path, row_labels=["latent z_t", "decoded D(z_t)"], col_labels=labels,
                         title="forward chain: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε")]
    if npz is not None:
        written.append(save_npz(
            npz,
            timesteps=np.array(chain.timesteps),
            alpha_bar=np.array(chain.alpha_bars),
            latents=chain.latents.numpy(),
            decoded=to_array(chain.decoded),
            source=to_array([chain.source]),
        ))
    return written
