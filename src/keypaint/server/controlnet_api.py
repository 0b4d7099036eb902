"""sd-webui-controlnet's API: its units in A1111 requests, its detected maps, and its /controlnet routes.

A request steers with `alwayson_scripts: {"controlnet": {"args": [unit, ...]}}`, each unit as webuiapi's
`ControlNetUnit.to_dict()` sends it (`image` or the older `input_image`, `mask`, `module`, `model`,
`weight`, `resize_mode`, `processor_res`, `threshold_a/b`, `guidance_start/end`, `control_mode`,
`pixel_perfect`, `enabled` ...). A unit keypaint cannot run as asked (a module that needs annotator
weights, "My prompt is more important") is a 422 naming the field, never dropped. As the extension does,
the answer's images end with each unit's detected map. The job API takes the same units under its own
names (`ControlField`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, StrictBool

from keypaint.core.control import (
    CONTROL_MODES,
    THRESHOLDS,
    ControlUnit,
    Preprocess,
    ResizeMode,
    strip_hash,
)
from keypaint.core.control_maps import control_map, png_bytes
from keypaint.core.controlnets import list_controlnets
from keypaint.errors import InvalidParams
from keypaint.models.hashing import file_sha256
from keypaint.server.errors import FieldError
from keypaint.server.fields import Float, Int
from keypaint.server.spec import JobSpec
from keypaint.server.state import ServerState
from keypaint.server.uploads import b64

API_VERSION = 2  # sd-webui-controlnet's /controlnet/version answer clients check


class ControlField(BaseModel):
    """One unit in POST /api/jobs: a ControlNet by name and its control image (base64 or data: URL)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    image: str
    preprocess: str = Preprocess.NONE.value
    weight: Float = 1.0
    start: Float = 0.0
    end: Float = 1.0
    guess_mode: StrictBool = False
    resize: str = ResizeMode.CROP_AND_RESIZE.value
    resolution: Int | None = None
    threshold_a: Float | None = None
    threshold_b: Float | None = None

    def unit(self, state: ServerState, index: int) -> ControlUnit:
        _, image = state.upload(self.image, f"control_units.{index}.image")
        return ControlUnit(strip_hash(self.model), image=image, preprocess=_module(self.preprocess),
                           weight=self.weight, start=self.start, end=self.end, guess_mode=self.guess_mode,
                           resize=ResizeMode.parse(self.resize), resolution=self.resolution,
                           threshold_a=self.threshold_a, threshold_b=self.threshold_b)


class DetectRequest(BaseModel):
    """POST /controlnet/detect, with the extension's field names and defaults."""

    controlnet_module: str = "none"
    controlnet_input_images: list[str] = []
    controlnet_images: list[str] = []  # the name webuiapi's controlnet_detect sends
    controlnet_processor_res: int = -1
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1
    controlnet_masks: list[str] = []


def job_units(fields: list[ControlField] | None, state: ServerState) -> tuple[ControlUnit, ...]:
    return tuple(field.unit(state, i) for i, field in enumerate(fields or []))


def a1111_units(alwayson: dict[str, Any] | None, state: ServerState) -> tuple[ControlUnit, ...]:
    """The enabled units of `alwayson_scripts.controlnet.args`, as webuiapi sends them."""
    script = next((v for k, v in (alwayson or {}).items() if k.lower() == "controlnet"), None)
    if script is None:
        return ()
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        raise FieldError("alwayson_scripts.controlnet.args", "must be a list of ControlNet units")
    units = []
    for index, raw in enumerate(args):
        where = f"alwayson_scripts.controlnet.args.{index}"
        if not isinstance(raw, dict):
            raise FieldError(where, "must be an object (a ControlNet unit)")
        if raw.get("enabled", True) is False:
            continue
        units.append(_a1111_unit(raw, state, where))
    return tuple(units)


def _a1111_unit(raw: dict[str, Any], state: ServerState, where: str) -> ControlUnit:
    picture = raw.get("image") if raw.get("image") is not None else raw.get("input_image")
    mask = raw.get("mask")
    if isinstance(picture, dict):  # {"image": ..., "mask": ...}, the extension's newer form
        picture, mask = picture.get("image"), mask or picture.get("mask")
    if not picture:
        raise FieldError(f"{where}.image", "give the unit's control image (base64)")
    _, image = state.upload(picture, f"{where}.image")
    if mask:
        _, mask_image = state.upload(mask, f"{where}.mask")
        image = image.convert("RGBA")  # white = repaint becomes transparent, as the inpaint module reads it
        image.putalpha(ImageOps.invert(mask_image.convert("L").resize(image.size)))
    model = raw.get("model")
    if not isinstance(model, str) or strip_hash(model) in ("", "None"):
        names = ", ".join(f.name for f in list_controlnets(state.config.home)) or "none"
        raise FieldError(f"{where}.model", f"name a ControlNet; this server has: {names}")
    module = _module(raw.get("module", "none"), f"{where}.module")
    mode = raw.get("control_mode", 0)
    index = CONTROL_MODES.index(mode) if mode in CONTROL_MODES else mode
    if index not in (0, 2) or isinstance(index, bool):
        raise FieldError(f"{where}.control_mode", f"{mode!r}: keypaint runs diffusers' modes "
                         f"{CONTROL_MODES[0]!r} and {CONTROL_MODES[2]!r} (guess mode)")
    resolution = raw.get("processor_res", -1)
    pixel_perfect = (bool(raw.get("pixel_perfect", False)) or not isinstance(resolution, int)
                     or resolution <= 0)
    a, b = THRESHOLDS.get(module, (None, None))
    try:
        return ControlUnit(
            strip_hash(model), image=image, preprocess=module, weight=_float(raw, "weight", 1.0, where),
            start=_float(raw, "guidance_start", 0.0, where), end=_float(raw, "guidance_end", 1.0, where),
            guess_mode=index == 2, resize=ResizeMode.parse(raw.get("resize_mode", "Crop and Resize")),
            resolution=None if pixel_perfect else resolution,
            threshold_a=_threshold(raw, "threshold_a", a, where),
            threshold_b=_threshold(raw, "threshold_b", b, where),
        )
    except InvalidParams as err:
        raise FieldError(f"{where}.{err.field.removeprefix('control_')}", err.reason) from None


def detected_maps(units: tuple[ControlUnit, ...], width: int, height: int,
                  mask: Image.Image | None = None) -> list[str]:
    """Each preprocessed unit's map as base64 PNG, as the extension appends them to a request's images."""
    maps = []
    for unit in units:
        if unit.preprocess is Preprocess.NONE:
            continue
        try:
            maps.append(b64(png_bytes(control_map(unit, width, height, mask).image)))
        except InvalidParams:
            continue  # inpaint with the request's own mask: the run had it, the map here has not
    return maps


def controlnet_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/controlnet", tags=["A1111 ControlNet"])

    @router.get("/version")
    def version() -> dict[str, Any]:
        return {"version": API_VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict[str, Any]:
        """The ControlNets in <home>/controlnet; with the built-in model, its own controls too."""
        from keypaint.builtin import MODEL

        home = state.config.home
        shipped = MODEL.controls if state.host.default_name == MODEL.name else None
        return {"model_list": [f"{f.name} [{file_sha256(f.weights, home=home)[:8]}]"
                               for f in list_controlnets(home, shipped)]}

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict[str, Any]:
        detail = {m.a1111: {"model_free": True, "sliders": _sliders(m)} for m in Preprocess}
        return {"module_list": list(detail), "module_detail": detail}

    @router.get("/settings")
    def settings() -> dict[str, Any]:
        from keypaint.core.control import MAX_UNITS

        return {"control_net_unit_count": MAX_UNITS}

    @router.post("/detect")
    def detect(body: DetectRequest) -> dict[str, Any]:
        module = _module(body.controlnet_module, "controlnet_module")
        inputs = body.controlnet_input_images or body.controlnet_images
        if not inputs:
            raise FieldError("controlnet_input_images", "no image selected")
        images = []
        for index, text in enumerate(inputs):
            _, image = state.upload(text, f"controlnet_input_images.{index}")
            masks = body.controlnet_masks
            mask = state.upload(masks[index], "controlnet_masks")[1] if index < len(masks) else None
            a, b = THRESHOLDS.get(module, (None, None))
            given_a, given_b = body.controlnet_threshold_a, body.controlnet_threshold_b
            unit = ControlUnit("detect", image=image, preprocess=module, resize=ResizeMode.JUST_RESIZE,
                               threshold_a=a if given_a < 0 or a is None else given_a,
                               threshold_b=b if given_b < 0 or b is None else given_b)
            width, height = image.size
            if body.controlnet_processor_res > 0:  # the extension answers at the processor resolution
                scale = body.controlnet_processor_res / min(width, height)
                width, height = max(8, round(width * scale)), max(8, round(height * scale))
            try:
                images.append(b64(png_bytes(control_map(unit, width, height, mask).image)))
            except InvalidParams as err:
                raise FieldError("controlnet_module", err.reason) from None
        return {"images": images, "info": "Success"}

    return router


def _module(name: object, field: str = "preprocess") -> Preprocess:
    try:
        return Preprocess.parse(str(name))
    except InvalidParams:
        known = ", ".join(m.a1111 for m in Preprocess)
        raise FieldError(field, f"module {name!r} is not available (it needs annotator weights keypaint "
                         f"does not ship); keypaint has: {known}") from None


def _float(raw: dict[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"{where}.{key}", f"must be a number, got {value!r}")
    return float(value)


def _threshold(raw: dict[str, Any], key: str, default: float | None, where: str) -> float | None:
    """A module's threshold as sent (-1: its default); None for a module that reads none."""
    if default is None:
        return None
    value = _float(raw, key, -1.0, where)
    return default if value < 0 else value


def _sliders(module: Preprocess) -> list[dict[str, Any]]:
    names = {Preprocess.CANNY: ("Canny Low Threshold", "Canny High Threshold"),
             Preprocess.SCRIBBLE: ("XDoG Threshold", None)}.get(module, (None, None))
    defaults = THRESHOLDS.get(module, (None, None))
    pairs = zip(names, defaults, strict=True)
    return [{"name": name, "value": value, "min": 1, "max": 255} for name, value in pairs if name]


def with_control(spec: JobSpec, units: tuple[ControlUnit, ...]) -> JobSpec:
    """`spec` steered by `units` (unchanged without any)."""
    return replace(spec, params=replace(spec.params, control_units=units)) if units else spec
