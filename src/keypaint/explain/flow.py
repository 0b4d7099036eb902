"""How a rectified-flow model's chains (SD3, Flux.1) differ from the DDPM chains `keypaint explain` draws.

DDPM (Ho et al. 2020), which SD 1.x/2.x/SDXL were trained on, noises with a variance-preserving schedule,
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps over 1000 discrete steps, and the U-Net predicts eps (or v);
the reverse chain removes that noise step by step, each step a Gaussian of known variance.

A rectified flow (Liu et al. 2022; Esser et al. 2024 for SD3) joins data and noise by straight lines,
x_t = (1 - t) x_0 + t eps for t in [0, 1], with no alpha-bar schedule and no variance to preserve; the
transformer predicts the velocity v = eps - x_0, and sampling integrates the ODE dx/dt = v from t = 1 to
t = 0 (Euler: x_{t - dt} = x_t - dt v). x_0 at any step is x_t - t v. Its "schedule" is only the time grid,
bent towards the noisy end by the shift s: t' = s t / (1 + (s - 1) t). There is no ancestral (fresh-noise)
step in the reverse chain and no forward chain of betas to plot, and Flux dev's guidance is an input of
the network rather than a mix of two predictions.
"""

from __future__ import annotations

from keypaint.errors import InvalidParams
from keypaint.models.loaded import LoadedModel

FLOW_VIEWS = ("compare",)  # views that only paint pictures, which flow models do too


def check_view(model: LoadedModel, view: str) -> None:
    """`InvalidParams` when `view` draws DDPM's chains and `model` is a rectified flow: how they differ."""
    if not model.kind.is_flow or view in FLOW_VIEWS:
        return
    raise InvalidParams("model", (
        f"{model.name} is a rectified-flow model ({model.kind.value}): `explain {view}` draws DDPM's chains "
        "(x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps/v prediction). A flow model runs straight paths "
        "x_t = (1 - t) x_0 + t eps, predicts the velocity eps - x_0 and integrates it from t = 1 to 0 on a "
        "shifted time grid, with no alpha-bar schedule and no fresh noise per step; see docs/flow-models.md. "
        "`explain compare` works with it"))
