"""`keypaint generate`'s ControlNet options: each repeatable, one unit per position.

`--control-model` says how many units there are; every unit needs its `--control-image`. With the built-in
model a control image needs no `--control-model`: its own sketch control (`keypaint-sketch`) steers. The
other options are given once (for every unit) or once per unit. With `--from`, a picture's recorded units
come back with their control images (kept in `controls/` beside it); `--control-image` alone replaces those
images.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from keypaint.cli.inputs import read_image
from keypaint.core.control import ControlUnit, Preprocess
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams

T = TypeVar("T")
# ControlUnit's fields in errors -> the option a user types
OPTIONS = {"control": "--control-model", "control_model": "--control-model",
           "control_image": "--control-image",
           "control_preprocess": "--control-preprocess", "control_weight": "--control-weight",
           "control_start": "--control-start", "control_end": "--control-end",
           "control_mode": "--control-model", "control_units": "--from"}

ControlModel = Annotated[list[str] | None, typer.Option(
    "--control-model", help="ControlNet name in <home>/controlnet (folder or .safetensors); repeatable")]
ControlImage = Annotated[list[Path] | None, typer.Option(
    "--control-image", help="control image of the unit at the same position; repeatable")]
ControlPreprocess = Annotated[list[str] | None, typer.Option(
    "--control-preprocess", help="none, canny, scribble, lineart or inpaint [default: none]; repeatable")]
ControlWeight = Annotated[list[float] | None, typer.Option(
    "--control-weight", help="how strongly the unit steers, 0..2 [default: 1]; repeatable")]
ControlStart = Annotated[list[float] | None, typer.Option(
    "--control-start", help="share of the steps after which the unit starts, 0..1 [default: 0]; repeatable")]
ControlEnd = Annotated[list[float] | None, typer.Option(
    "--control-end", help="share of the steps after which the unit stops, 0..1 [default: 1]; repeatable")]


def apply_control_options(params: GenerationParams, models: list[str] | None, images: list[Path] | None,
                          preprocess: list[str] | None, weights: list[float] | None,
                          starts: list[float] | None, ends: list[float] | None, model: str | None = None,
                          home: Path | None = None) -> GenerationParams:
    """`params` with the units the options give (or, with images alone, the recorded units' images, or
    for a picture without units the sketch control of `model`, the model the picture is painted with)."""
    if not models and images and not params.control_units:
        models = [default_control(model, home)] * len(images)
    if not models:
        for name, given in (("--control-preprocess", preprocess), ("--control-weight", weights),
                            ("--control-start", starts), ("--control-end", ends)):
            if given:
                raise InvalidParams(name, "needs --control-model (one per unit)")
        if images:
            return _replace_images(params, images)
        return params
    count = len(models)
    if len(images or []) != count:
        raise InvalidParams("--control-image", f"give one per --control-model: {count} models, "
                            f"{len(images or [])} images")
    pictures = [read_image(path, "control image") for path in images or []]
    names = _per_unit("--control-preprocess", preprocess, count, "none")
    modules = [Preprocess.parse(name) for name in names]
    units = tuple(
        ControlUnit(model, image=picture, preprocess=module, weight=weight, start=start, end=end)
        for model, picture, module, weight, start, end in zip(
            models, pictures, modules, _per_unit("--control-weight", weights, count, 1.0),
            _per_unit("--control-start", starts, count, 0.0), _per_unit("--control-end", ends, count, 1.0),
            strict=True)
    )
    return replace(params, control_units=units)


def default_control(model: str | None, home: Path | None) -> str:
    """The control model of a control image given without one: the built-in model's sketch control (None
    names the built-in model); for another model, an error listing the ControlNets there are."""
    from keypaint.models.registry import BUILTIN_ALIASES

    if model is None or model in BUILTIN_ALIASES:
        from keypaint.builtin import SKETCH

        return SKETCH
    from keypaint.core.controlnets import controlnet_dir, list_controlnets

    names = ", ".join(f.name for f in list_controlnets(home)) or "none"
    raise InvalidParams("--control-model", f"name the ControlNet that steers {model} (only the built-in "
                        f"model has its own sketch control); {controlnet_dir(home)} holds: {names}")


def _per_unit(option: str, values: list[T] | None, count: int, default: T) -> list[T]:
    if not values:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise InvalidParams(option, f"give it once, or once per --control-model ({count}), not {len(values)} "
                            "times")
    return list(values)


def _replace_images(params: GenerationParams, images: list[Path]) -> GenerationParams:
    units = params.control_units
    if len(images) != len(units):
        raise InvalidParams("--control-image", f"the picture has {len(units)} ControlNet units; give "
                            f"--control-model for new ones, or one image per recorded unit")
    pictures = [read_image(path, "control image") for path in images]
    return replace(params, control_units=tuple(replace(unit, image=picture, image_sha256=None)
                                               for unit, picture in zip(units, pictures, strict=True)))
