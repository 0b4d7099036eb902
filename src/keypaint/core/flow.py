"""What a request says to a rectified-flow model (SD3, Flux.1), and the flow samplers by familiar names.

Flow models do not run DDPM's chain. They are trained on straight paths x_t = (1 - t) x_0 + t eps, t in [0, 1]
(Liu et al. 2022, "Flow straight and fast"; Esser et al. 2024, SD3), and predict the velocity
v = eps - x_0; a sampler integrates dx/dt = v from t = 1 (noise) to t = 0. `shift` s bends the time grid
towards the noisy end, t' = s t / (1 + (s - 1) t) (SD3: 3; Flux dev: chosen from the picture size; Flux
schnell: 1). Flux dev was distilled from classifier-free guidance: the guidance strength is an input of the
network ("Distilled CFG Scale", Forge's name; 3.5 by default), beside real CFG, which needs a negative
prompt and a second pass.

Samplers keep A1111's names and map to diffusers' flow schedulers: Euler (FlowMatchEulerDiscreteScheduler,
ComfyUI `euler` + `simple`), Heun (FlowMatchHeunDiscreteScheduler; SD3 only, Flux's pipeline sets its own
time grid), DPM++ 2M and UniPC (the multistep solvers on flow sigmas; on Flux only with its size-dependent
shift, which its pipeline always hands them). keypaint's default, DPM++ 2M Karras, has no flow form (Karras
sigmas are a variance-exploding grid) and means Euler on these models, as Forge's and ComfyUI's flow presets
do. The stochastic flow samplers (diffusers' stochastic Euler, FlowMatchLCM) are left out: the SD3 and Flux
pipelines step them without the picture's generator, so their pictures would not follow from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

    from keypaint.core.params import GenerationParams

MAX_SHIFT = 100.0
MAX_DISTILLED_GUIDANCE = 30.0
FLUX_DEV_GUIDANCE = 3.5  # Forge's and diffusers' default for Flux.1 dev
# infotext names (Forge's spelling)
DISTILLED_LABEL = "Distilled CFG Scale"
SHIFT_LABEL = "Shift"

# sampler -> (diffusers scheduler class, config overrides) on a flow model
_MULTISTEP = {"prediction_type": "flow_prediction", "use_flow_sigmas": True}
FLOW_SAMPLERS: dict[Sampler, tuple[str, dict[str, Any]]] = {
    Sampler.EULER: ("FlowMatchEulerDiscreteScheduler", {}),
    Sampler.HEUN: ("FlowMatchHeunDiscreteScheduler", {}),
    Sampler.DPMPP_2M: ("DPMSolverMultistepScheduler", {**_MULTISTEP, "algorithm_type": "dpmsolver++"}),
    Sampler.UNIPC: ("UniPCMultistepScheduler", _MULTISTEP),
}
FLUX_REFUSED = (Sampler.HEUN,)  # FluxPipeline hands the scheduler its own sigmas, which Heun does not take
DEFAULT_SAMPLER = Sampler.DPMPP_2M_KARRAS  # GenerationParams' default; Euler on flow models


@dataclass(frozen=True)
class FlowOptions:
    """The request's settings that only flow models read; None: the model's own."""

    shift: float | None = None  # time shift of the sampling grid (SD3 3, Flux schnell 1, Flux dev by size)
    distilled_guidance: float | None = None  # Flux dev's guidance input (Forge: Distilled CFG Scale)

    def validate(self) -> None:
        for name, value, high in (("shift", self.shift, MAX_SHIFT),
                                  ("distilled_guidance", self.distilled_guidance, MAX_DISTILLED_GUIDANCE)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise InvalidParams(name, f"must be a number, got {value!r}")
            if not 0 < value <= high:
                raise InvalidParams(name, f"must be within (0, {high:g}], got {value:g}")

    @property
    def is_default(self) -> bool:
        return self.shift is None and self.distilled_guidance is None

    def infotext(self) -> dict[str, float]:
        """Forge's fields for these settings (those that are set)."""
        fields = {DISTILLED_LABEL: self.distilled_guidance, SHIFT_LABEL: self.shift}
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_infotext(cls, fields: dict[str, str]) -> FlowOptions:
        values: dict[str, float] = {}
        for label, name in ((DISTILLED_LABEL, "distilled_guidance"), (SHIFT_LABEL, "shift")):
            if label in fields:
                try:
                    values[name] = float(fields[label].strip())
                except ValueError:
                    why = f"infotext '{label}' must be a number, got {fields[label]!r}"
                    raise InvalidParams(name, why) from None
        options = cls(**values)
        options.validate()
        return options

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in (("shift", self.shift), ("distilled_guidance", self.distilled_guidance))
                if v is not None}

    @classmethod
    def from_json(cls, data: object) -> FlowOptions:
        if not isinstance(data, dict) or not set(data) <= {"shift", "distilled_guidance"}:
            raise InvalidParams("flow", "must be {'shift': number, 'distilled_guidance': number}, "
                                f"got {data!r}")
        for key, value in data.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidParams(key, f"must be a number, got {value!r}")
        options = cls(**{k: None if v is None else float(v) for k, v in data.items()})
        options.validate()
        return options


def resolve_flow(params: GenerationParams, kind: str, guidance_embeds: bool,
                 multiple: int) -> GenerationParams:
    """`params` for a model of family `kind` ("sd3", "flux", ...) whose picture sides are multiples of
    `multiple`: what a flow model cannot run is refused, what it leaves open filled in (the default
    sampler, Flux dev's distilled guidance)."""
    flow = params.flow
    if kind not in ("sd3", "flux"):
        if not flow.is_default:
            raise InvalidParams("flow", "shift and distilled guidance are for SD3 and Flux models")
        return params
    for name, side in (("width", params.width), ("height", params.height)):
        if side is not None and side % multiple:
            raise InvalidParams(name, f"must be a multiple of {multiple} for this {kind} model, got {side}")
    sampler = Sampler.EULER if params.sampler is DEFAULT_SAMPLER else params.sampler
    if sampler not in FLOW_SAMPLERS or (kind == "flux" and sampler in FLUX_REFUSED):
        known = ", ".join(s.value for s in FLOW_SAMPLERS if not (kind == "flux" and s in FLUX_REFUSED))
        raise InvalidParams("sampler",
                            f"{params.sampler.value} does not sample flow models ({kind}); use {known}")
    if flow.distilled_guidance is not None and not guidance_embeds:
        which = "Flux schnell" if kind == "flux" else "SD3"
        raise InvalidParams("distilled_guidance", f"{which} takes no distilled guidance; use guidance_scale")
    if guidance_embeds and flow.distilled_guidance is None:
        flow = replace(flow, distilled_guidance=FLUX_DEV_GUIDANCE)
    return replace(params, sampler=sampler, flow=flow)


def make_flow_scheduler(sampler: Sampler, base_config: dict[str, Any], shift: float | None,
                        size_shift: bool = False) -> SchedulerMixin:
    """A fresh flow scheduler for `sampler` on the model's own schedule; `shift` fixes the time shift
    (which turns Flux dev's size-dependent shift off). `size_shift`: the pipeline hands the scheduler a
    shift chosen from the picture size (Flux), which the multistep solvers take only as their own shift."""
    import diffusers

    name, overrides = FLOW_SAMPLERS[sampler]
    multistep = name in ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
    if multistep and size_shift and (shift is not None or not base_config.get("use_dynamic_shifting")):
        raise InvalidParams("sampler", f"{sampler.value} on Flux runs with Flux dev's size-dependent "
                            "shift only; "
                            "use Euler for a fixed shift or Flux schnell")
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    if name != "FlowMatchEulerDiscreteScheduler":  # the other classes take only the shift of its options
        kept = ("num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift", "max_shift",
                "base_image_seq_len", "max_image_seq_len")
        config = {k: v for k, v in config.items() if k in kept}
    if shift is not None:
        config.update(shift=float(shift), use_dynamic_shifting=False)
    if multistep:
        config = {"num_train_timesteps": config.get("num_train_timesteps", 1000),
                  "flow_shift": float(config.get("shift", 1.0)), "use_dynamic_shifting": size_shift}
    scheduler_class: type[SchedulerMixin] = getattr(diffusers, name)
    return scheduler_class.from_config(config, **overrides)
