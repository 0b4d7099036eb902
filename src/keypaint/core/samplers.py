"""Samplers by the names users know (A1111's), mapped to diffusers schedulers.

Nothing here re-implements a sampler: each name picks a diffusers scheduler class and the config
overrides that turn it into what A1111 calls by that name (see the diffusers docs' scheduler table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin


class Sampler(StrEnum):
    """A sampler name as A1111 and Civitai write it."""

    DDPM = "DDPM"
    DDIM = "DDIM"
    EULER = "Euler"
    EULER_A = "Euler a"
    HEUN = "Heun"
    LMS = "LMS"
    DPMPP_2M = "DPM++ 2M"
    DPMPP_2M_KARRAS = "DPM++ 2M Karras"
    DPMPP_SDE_KARRAS = "DPM++ SDE Karras"
    UNIPC = "UniPC"
    LCM = "LCM"

    @classmethod
    def parse(cls, name: str | Sampler) -> Sampler:
        """Find a sampler by its name, case- and space-insensitive ("euler_a" and "Euler a" both work)."""
        if isinstance(name, Sampler):
            return name
        key = _normalise(name)
        for sampler in cls:
            if _normalise(sampler.value) == key or _normalise(sampler.name) == key:
                return sampler
        for alias, sampler in _ALIASES.items():
            if _normalise(alias) == key:
                return sampler
        known = ", ".join(s.value for s in cls)
        raise InvalidParams("sampler", f"unknown sampler {name!r}; known: {known}")


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


@dataclass(frozen=True)
class SamplerSpec:
    """How one sampler name becomes a diffusers scheduler, and how A1111 writes it in infotext."""

    scheduler: str  # the diffusers class name; imported when a scheduler is made, so listing names is cheap
    overrides: dict[str, Any] = field(default_factory=dict)
    infotext_sampler: str = ""
    schedule_type: str = "Automatic"
    ancestral: bool = False
    description: str = ""


SPECS: dict[Sampler, SamplerSpec] = {
    Sampler.DDPM: SamplerSpec(
        "DDPMScheduler",
        {},
        "DDPM",
        ancestral=True,
        description="the paper's ancestral reverse chain (Ho et al. 2020)",
    ),
    Sampler.DDIM: SamplerSpec(
        "DDIMScheduler", {}, "DDIM", description="deterministic implicit sampler (Song et al.)"
    ),
    Sampler.EULER: SamplerSpec(
        "EulerDiscreteScheduler", {}, "Euler", description="Karras et al. Euler ODE steps"
    ),
    Sampler.EULER_A: SamplerSpec(
        "EulerAncestralDiscreteScheduler",
        {},
        "Euler a",
        ancestral=True,
        description="Euler with fresh noise each step",
    ),
    Sampler.HEUN: SamplerSpec(
        "HeunDiscreteScheduler", {}, "Heun", description="2nd-order Heun, two UNet calls a step"
    ),
    Sampler.LMS: SamplerSpec("LMSDiscreteScheduler", {}, "LMS", description="linear multistep"),
    Sampler.DPMPP_2M: SamplerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False},
        "DPM++ 2M",
        description="DPM-Solver++ 2nd-order multistep",
    ),
    Sampler.DPMPP_2M_KARRAS: SamplerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
        "DPM++ 2M",
        "Karras",
        description="DPM++ 2M on Karras sigmas",
    ),
    Sampler.DPMPP_SDE_KARRAS: SamplerSpec(
        "DPMSolverSDEScheduler",
        {"use_karras_sigmas": True},
        "DPM++ SDE",
        "Karras",
        ancestral=True,
        description="stochastic DPM++ on Karras sigmas",
    ),
    Sampler.UNIPC: SamplerSpec(
        "UniPCMultistepScheduler", {}, "UniPC", description="unified predictor-corrector"
    ),
    Sampler.LCM: SamplerSpec(
        "LCMScheduler", {}, "LCM", description="latent consistency; for LCM-distilled models"
    ),
}

# Names other tools write for the same samplers (A1111's older combined names and k-diffusion's).
_ALIASES: dict[str, Sampler] = {
    "k_euler": Sampler.EULER,
    "k_euler_ancestral": Sampler.EULER_A,
    "euler_ancestral": Sampler.EULER_A,
    "k_heun": Sampler.HEUN,
    "k_lms": Sampler.LMS,
    "dpmpp_2m": Sampler.DPMPP_2M,
    "DPM++ 2M Karras": Sampler.DPMPP_2M_KARRAS,
    "dpmpp_2m_karras": Sampler.DPMPP_2M_KARRAS,
    "DPM++ SDE": Sampler.DPMPP_SDE_KARRAS,
    "dpmpp_sde_karras": Sampler.DPMPP_SDE_KARRAS,
    "UniPC Multistep": Sampler.UNIPC,
}


def from_infotext(sampler: str, schedule_type: str | None) -> Sampler:
    """The sampler an A1111 infotext names with its `Sampler:` and `Schedule type:` fields."""
    if schedule_type and schedule_type.lower() == "karras" and "karras" not in sampler.lower():
        try:
            return Sampler.parse(f"{sampler} Karras")
        except InvalidParams:
            pass
    return Sampler.parse(sampler)


def make_scheduler(sampler: Sampler, base_config: dict[str, Any], seeds: list[int]) -> SchedulerMixin:
    """A fresh scheduler for `sampler` that keeps the model's training schedule (betas, prediction type).

    `seeds` are the batch items' seeds: the SDE sampler's Brownian tree is seeded from them so that its
    noise, like everything else, is a function of the seed alone.
    """
    spec = SPECS[sampler]
    overrides = dict(spec.overrides)
    if spec.scheduler == "DPMSolverSDEScheduler":
        overrides["noise_sampler_seed"] = seeds if len(seeds) > 1 else seeds[0]
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    # Latents are not pixels: never clamp predicted x_0 to [-1, 1], and end the chain at the model's last
    # trained step (SD's own values; configs of other schedulers omit them and get DDPM's pixel defaults).
    config.setdefault("clip_sample", False)
    config.setdefault("set_alpha_to_one", False)
    import diffusers

    scheduler_class: type[SchedulerMixin] = getattr(diffusers, spec.scheduler)
    return scheduler_class.from_config(config, **overrides)
