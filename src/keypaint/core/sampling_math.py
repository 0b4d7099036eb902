"""The diffusion maths every engine shares: guidance, x_0/eps/v conversions, the forward closed form, x_T.

One definition each, called by the diffusers path (`pipeline_run`, the live preview in `denoised`), the
frozen CPU path (`frozen.model`, numpy and ONNX Runtime only) and `explain`. The formulas are plain
arithmetic, so they take numpy arrays and torch tensors alike (and `abar` as a float or a 0-d array);
this module never imports PyTorch at import time, so the frozen path stays torch-free.

Notation (Ho et al. 2020): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, abar_t = prod_{s<=t} (1 - beta_s),
in the variance-preserving form the U-Net sees (k-diffusion style schedulers scale their sigma-form
latents with `scale_model_input` first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from keypaint.core.onnx_coldstart.noise import torch_randn

if TYPE_CHECKING:
    import torch

# each function returns the kind of array it is given
A = TypeVar("A", np.ndarray, "torch.Tensor")


def guidance(uncond: A, cond: A, scale: Any) -> A:
    """Classifier-free guidance (Ho & Salimans 2022): eps = eps_u + w (eps_c - eps_u); w = 1 is eps_c."""
    return uncond + scale * (cond - uncond)


def guide_batch(prediction: A, scale: Any) -> A:
    """`guidance` on a batch laid out [uncond rows, cond rows], as the pipelines and frozen path run it."""
    half = len(prediction) // 2
    return guidance(prediction[:half], prediction[half:], scale)


def x0_from_eps(x_t: A, eps: A, abar: Any) -> A:
    """x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)  (Ho et al. 2020, eq. 15)."""
    return (x_t - (1 - abar) ** 0.5 * eps) / abar**0.5


def eps_from_x0(x_t: A, x0: A, abar: Any) -> A:
    """eps = (x_t - sqrt(abar) x_0) / sqrt(1 - abar); the 1e-8 floor keeps abar = 1 (t = 0) finite."""
    return (x_t - abar**0.5 * x0) / max((1 - abar) ** 0.5, 1e-8)


def x0_from_v(x_t: A, v: A, abar: Any) -> A:
    """v-prediction (Salimans & Ho 2022), v = sqrt(abar) eps - sqrt(1 - abar) x_0:
    x_0 = sqrt(abar) x_t - sqrt(1 - abar) v."""
    return abar**0.5 * x_t - (1 - abar) ** 0.5 * v


def eps_from_v(x_t: A, v: A, abar: Any) -> A:
    """v-prediction (Salimans & Ho 2022): eps = sqrt(abar) v + sqrt(1 - abar) x_t."""
    return abar**0.5 * v + (1 - abar) ** 0.5 * x_t


def split_prediction(output: A, x_t: A, abar: Any, prediction_type: str) -> tuple[A, A]:
    """(x_0, eps) from the U-Net output at x_t, whatever the model predicts (diffusers' prediction_type)."""
    if prediction_type == "epsilon":
        return x0_from_eps(x_t, output, abar), output
    if prediction_type == "v_prediction":
        return x0_from_v(x_t, output, abar), eps_from_v(x_t, output, abar)
    if prediction_type == "sample":
        return output, eps_from_x0(x_t, output, abar)
    raise ValueError(f"unknown prediction type {prediction_type!r}")


def closed_form(x0: A, eps: A, abar: Any) -> A:
    """q(x_t | x_0) in one go (Ho et al. 2020, eq. 4): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    return abar**0.5 * x0 + (1 - abar) ** 0.5 * eps


def cpu_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per picture: its noise depends on the seed alone, not on the device or the batch."""
    import torch

    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]


def start_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """x_T ~ N(0, I), (pictures, *shape) float32 on the CPU, one picture per generator (which the caller
    keeps: ancestral samplers draw their step noise from it next)."""
    import torch

    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])


def start_noise_numpy(seeds: list[int], shape: tuple[int, ...]) -> np.ndarray:
    """`start_noise` of these seeds without PyTorch (equal to ~1e-6; see `frozen.noise`)."""
    return np.stack([torch_randn(seed, shape) for seed in seeds])
