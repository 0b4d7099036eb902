"""The forward chain's math: noise schedules, the closed form q(x_t | x_0) and the one-step chain.

Time follows the paper (Ho et al. 2020): t = 0 is the clean x_0 and t = 1..T are the noised x_t.
diffusers stores alpha_bar for t = 1..T at indices 0..T-1, so paper step t reads index t - 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler
from matplotlib.figure import Figure

from keypaint.core.sampling_math import closed_form as closed_form  # q(x_t | x_0), re-exported
from keypaint.errors import InvalidParams
from keypaint.explain.figures import save_figure

# The schedules people meet, as DDPMScheduler configs over T = 1000 steps.
SCHEDULES: dict[str, dict[str, Any]] = {
    # Ho et al. 2020: beta_t linear from 1e-4 to 0.02, in pixel space
    "DDPM linear": {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02},
    # Rombach et al. 2022 (SD), in latents: sqrt(beta_t) linear from sqrt(0.00085) to sqrt(0.012)
    "SD scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    # Nichol & Dhariwal 2021: alpha_bar_t = cos^2((t/T + s) / (1 + s) * pi/2), betas capped at 0.999
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
}


def training_scheduler(config: dict[str, Any]) -> DDPMScheduler:
    """The model's training schedule (betas, T) as a DDPMScheduler, whatever sampler its config names."""
    return DDPMScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def alpha_bar(scheduler: DDPMScheduler, t: int) -> float:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s); alpha_bar_0 = 1 (the clean picture)."""
    return 1.0 if t == 0 else float(scheduler.alphas_cumprod[t - 1])


def check_timesteps(timesteps: list[int], scheduler: DDPMScheduler) -> list[int]:
    """Refuse steps outside 0..T before any work; keep the user's order."""
    if not timesteps:
        raise InvalidParams("steps", "give at least one step")
    total = int(scheduler.config.num_train_timesteps)
    for t in timesteps:
        if not 0 <= t <= total:
            raise InvalidParams("steps", f"{t} is outside the schedule's 0..{total}")
    return timesteps


def iterate_chain(
    x: torch.Tensor, scheduler: DDPMScheduler, t: int, generator: torch.Generator, start: int = 0
) -> torch.Tensor:
    """x_t from x_start (default x_0), running the forward chain one step at a time (Ho et al. 2020, eq. 2):

    x_s = sqrt(alpha_s) x_{s-1} + sqrt(1 - alpha_s) eps_s, alpha_s = 1 - beta_s, fresh eps_s ~ N(0, I).
    """
    for s in range(start + 1, t + 1):
        alpha = float(scheduler.alphas[s - 1])
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = alpha**0.5 * x + (1 - alpha) ** 0.5 * eps
    return x


def schedule_curves(scheduler: DDPMScheduler) -> dict[str, np.ndarray]:
    """beta_t, alpha_bar_t and SNR_t = alpha_bar_t / (1 - alpha_bar_t) for t = 1..T."""
    abar = scheduler.alphas_cumprod.double().numpy()
    return {"beta": scheduler.betas.double().numpy(), "alpha_bar": abar, "snr": abar / (1 - abar)}


def plot_schedules(path: Path, extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """beta_t, alpha_bar_t and log SNR_t of the known schedules (and `extra` ones) side by side."""
    configs = {**SCHEDULES, **(extra or {})}
    fig = Figure(figsize=(11, 3.2))
    ax_beta, ax_abar, ax_snr = fig.subplots(1, 3)
    for name, config in configs.items():
        curves = schedule_curves(training_scheduler({"num_train_timesteps": 1000, **config}))
        t = np.arange(1, len(curves["beta"]) + 1)
        ax_beta.plot(t, curves["beta"], label=name)
        ax_abar.plot(t, curves["alpha_bar"], label=name)
        ax_snr.plot(t, curves["snr"], label=name)
    ax_beta.set(title="beta_t (noise added at step t)", xlabel="t", yscale="log")
    ax_abar.set(title="alpha_bar_t (signal kept, squared)", xlabel="t")
    ax_snr.set(title="SNR_t = alpha_bar / (1 - alpha_bar)", xlabel="t", yscale="log")
    for ax in (ax_beta, ax_abar, ax_snr):
        ax.grid(alpha=0.3)
    ax_abar.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
