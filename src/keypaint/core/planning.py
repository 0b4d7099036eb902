"""What `Painter.plan` checks before any weights load, and how `Painter.resolve` fills a request in.

A request is refused here, in milliseconds, for what it asks and not for what the model is: the params
against the limits, the LoRA and embedding files it names (found, and their headers read), LoRAs on a
fast path that cannot run them, and the content policy (blocked keywords). What depends on the model (its
native size, whether an adapter was trained on it) is `Painter.resolve`'s part, after the model is there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from keypaint.core.params import GenerationParams, Limits, check_size
from keypaint.core.speed.options import SpeedOptions
from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    from keypaint.core.adapters import Plan
    from keypaint.provenance.policy import ContentPolicy


def plan_request(
    params: GenerationParams,
    *,
    limits: Limits,
    policy: ContentPolicy | None,
    home: Path | None,
    options: SpeedOptions,
    device: str | None,
    backend: str | None,
    shipped_loras: Path | None = None,
    shipped_controls: Path | None = None,
) -> Plan:
    """The adapter files `params` name, once everything a request can get wrong is checked.

    `device` is the device asked for (None: auto); `backend` the fast path's backend when the model is
    loaded (None before: it is then foreseen from `options` and `device`); `shipped_loras` the built-in
    model's LoRA folder (`BuiltinModel.loras`; None: no shipped LoRAs), `shipped_controls` its control
    models' (`BuiltinModel.controls`).
    """
    from keypaint.core.adapters import resolve_files

    # in the order the CLI and the server always checked: params, files, speed, then the content policy
    params.validate(limits)
    # LoRA and embedding files exist and are what they claim
    files = resolve_files(params, home, shipped_loras)
    if files.loras and options.fast:
        _check_fast_loras(options, device, backend)
    if params.control_units:
        _check_control(params, home, options, shipped_controls)
    if policy is not None:
        policy.check(params.prompt)
    return files


def _check_fast_loras(options: SpeedOptions, device: str | None, backend: str | None) -> None:
    """LoRAs run on the plain path and on the CPU fast path (ONNX graphs of the U-Net with them on), not on
    the compiled GPU one."""
    if backend is not None:
        if backend not in ("eager", "onnxruntime"):
            fast = f"not the {backend} fast path"
            raise InvalidParams("lora", f"LoRAs run on the plain path, {fast}; drop --fast")
        return
    foreseen = options.backend
    if foreseen == "auto":
        from keypaint.core.devices import pick_device

        foreseen = "onnxruntime" if pick_device(device).type == "cpu" else "compile"
    if foreseen != "onnxruntime":
        raise InvalidParams("lora", "LoRAs run on the CPU fast path only; drop --fast or use --device cpu")


def _check_control(params: GenerationParams, home: Path | None, options: SpeedOptions,
                   shipped: Path | None) -> None:
    """The ControlNets named are in <home>/controlnet. They run on the plain pipeline (a fast path's
    stand-in U-Net takes no residuals), which DeepCache would change under them."""
    from keypaint.core.controlnets import architecture, find_controlnet

    for unit in params.control_units:
        architecture(find_controlnet(unit.model, home, shipped))  # found, and a ControlNet by its header
    if options.deep_cache > 1:
        raise InvalidParams("control", "ControlNet needs every U-Net block each step; drop --deep-cache")


def fill_in(params: GenerationParams, native_size: int, limits: Limits) -> GenerationParams:
    """`params` (already planned) with a concrete seed and size: the init image's (rounded down to a
    multiple of 8), else the model's native one; the size is checked again once it is concrete."""
    width, height = params.width, params.height
    if params.init_image is not None and (width is None or height is None):
        iw, ih = params.init_image.size
        iw, ih = iw - iw % 8, ih - ih % 8
        if params.outpaint is not None:  # the picture grows by what is added on its sides
            iw, ih = params.outpaint.extended(iw, ih)
        width, height = width or iw, height or ih
    resolved = replace(params.with_seed(), width=width or native_size, height=height or native_size)
    check_size(resolved.width, resolved.height, limits)
    if resolved.hires is not None:
        resolved.hires.check_target(resolved.width, resolved.height, limits.max_pixels)
    if resolved.outpaint is not None:
        resolved.outpaint.inner(resolved.width, resolved.height)
    return resolved

