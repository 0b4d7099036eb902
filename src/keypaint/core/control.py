"""`ControlUnit`: one ControlNet in a request, its control image, preprocessor, weight and step range.

A request holds a tuple of units (`GenerationParams.control_units`); several units run together as
diffusers' MultiControlNet. Each unit names a ControlNet by name in `<home>/controlnet` (a diffusers
folder or a single `.safetensors` file: `core.controlnets` finds and loads it). Its control image is
preprocessed (`core.control_maps`) at the picture's size unless `resolution` says otherwise.

In the JSON (`core.codec`) a unit's image is its SHA-256 (of the image's PNG encoding): the picture travels
beside the JSON, as `init_image` does; a saved picture keeps its control images beside it
(`outputs.control_images`), so `keypaint generate --from` finds them by that hash.

The picture's infotext carries sd-webui-controlnet's `ControlNet 0: "Module: canny, Model: NAME, ..."`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from PIL import Image

from keypaint.errors import InvalidParams


class Preprocess(StrEnum):
    """What turns the control image into the map the ControlNet reads (sd-webui-controlnet's modules)."""

    NONE = "none"  # the image is the map already
    CANNY = "canny"  # OpenCV Canny edges, thresholds a/b (A1111's 100/200)
    SCRIBBLE = "scribble"  # dark strokes of a sketch or picture as white lines (A1111's scribble_xdog)
    LINEART = "lineart"  # line art from a picture, model-free (A1111's lineart_standard)
    INPAINT = "inpaint"  # the image with its masked part at -1 (A1111's inpaint_only)

    @property
    def a1111(self) -> str:
        """The module name sd-webui-controlnet writes and lists."""
        return A1111_MODULES[self]

    @classmethod
    def parse(cls, name: str) -> Preprocess:
        """keypaint's name or sd-webui-controlnet's (`scribble_xdog`, `lineart_standard`, `inpaint_only`)."""
        key = str(name).strip().lower()
        for member in cls:
            if key in (member.value, member.a1111) or key in ALIASES.get(member, ()):
                return member
        known = ", ".join(m.value for m in cls)
        raise InvalidParams("control_preprocess", f"unknown preprocessor {name!r}; known: {known}")


A1111_MODULES = {Preprocess.NONE: "none", Preprocess.CANNY: "canny", Preprocess.SCRIBBLE: "scribble_xdog",
                 Preprocess.LINEART: "lineart_standard", Preprocess.INPAINT: "inpaint_only"}
ALIASES = {Preprocess.LINEART: ("lineart_standard (from white bg & black line)",),
           Preprocess.INPAINT: ("inpaint_global_harmonious",)}
# the thresholds each module reads, with sd-webui-controlnet's defaults (None: the module has none)
THRESHOLDS: dict[Preprocess, tuple[float | None, float | None]] = {
    Preprocess.CANNY: (100.0, 200.0), Preprocess.SCRIBBLE: (32.0, None)}


class ResizeMode(StrEnum):
    """How a control image of another shape meets the picture (sd-webui-controlnet's names)."""

    JUST_RESIZE = "Just Resize"  # stretched to the picture's size
    CROP_AND_RESIZE = "Crop and Resize"  # scaled to cover it, the overhang cut off (centred)
    RESIZE_AND_FILL = "Resize and Fill"  # scaled to fit inside it, the rest black

    @classmethod
    def parse(cls, value: object) -> ResizeMode:
        names = {m.value.lower(): m for m in cls} | {"inner fit (scale to fit)": cls.CROP_AND_RESIZE,
                                                      "outer fit (shrink to fit)": cls.RESIZE_AND_FILL}
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(cls):
            return list(cls)[value]
        if isinstance(value, str) and value.strip().lower() in names:
            return names[value.strip().lower()]
        raise InvalidParams("control_resize", f"unknown resize mode {value!r}; known: "
                            f"{', '.join(m.value for m in cls)}")


MAX_CONTROL_WEIGHT = 2.0  # sd-webui-controlnet's slider ends at 2
MAX_UNITS = 4  # ControlNets per request (sd-webui-controlnet shows 3 by default)
_HASH = re.compile(r"^(.*?)\s*\[[0-9a-fA-F]{8,64}\]$")  # "control_v11p_sd15_canny [d14c016b]"


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet steering a request."""

    model: str  # a ControlNet's name in <home>/controlnet: a .safetensors file's stem or a diffusers folder
    image: Image.Image | None = field(default=None, repr=False, compare=False)  # the control image as given
    preprocess: Preprocess = Preprocess.NONE
    weight: float = 1.0  # how strongly its residuals are added (diffusers' controlnet_conditioning_scale)
    start: float = 0.0  # the share of the steps after which it starts steering ...
    end: float = 1.0  # ... and after which it stops (diffusers' control_guidance_start/end)
    guess_mode: bool = False  # A1111's "ControlNet is more important": it steers the conditional pass only
    resize: ResizeMode = ResizeMode.CROP_AND_RESIZE
    resolution: int | None = None  # preprocess at this short side (A1111 processor_res); None: picture size
    threshold_a: float | None = None  # the module's first threshold (canny: low), None: its default
    threshold_b: float | None = None  # canny: high
    image_sha256: str | None = None  # set when the unit was read from JSON without its picture

    @property
    def sha256(self) -> str | None:
        """The image's reference in JSON: the SHA-256 of its PNG encoding (or the recorded one)."""
        if self.image is None:
            return self.image_sha256
        from keypaint.core.control_maps import image_sha256

        return image_sha256(self.image)

    @property
    def thresholds(self) -> tuple[float | None, float | None]:
        """(a, b) as the module reads them: the unit's, else the module's defaults."""
        default_a, default_b = THRESHOLDS.get(self.preprocess, (None, None))
        return (self.threshold_a if self.threshold_a is not None else default_a,
                self.threshold_b if self.threshold_b is not None else default_b)

    def validate(self, index: int) -> None:
        """`InvalidParams("control", ...)` naming the unit, for what cannot run; no model needed."""
        where = f"unit {index}"
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidParams("control_model", f"{where}: name a ControlNet in <home>/controlnet")
        if self.image is None:
            missing = f" (recorded as {self.image_sha256[:12]})" if self.image_sha256 else ""
            raise InvalidParams("control_image", f"{where}: give its control image{missing}")
        if not isinstance(self.image, Image.Image):
            raise InvalidParams("control_image", f"{where}: the control image must be a picture")
        if not isinstance(self.preprocess, Preprocess):
            raise InvalidParams("control_preprocess", f"{where}: unknown preprocessor {self.preprocess!r}")
        if not isinstance(self.resize, ResizeMode):
            raise InvalidParams("control_resize", f"{where}: unknown resize mode {self.resize!r}")
        _number(f"{where}: weight", self.weight, 0.0, MAX_CONTROL_WEIGHT, "control_weight")
        _number(f"{where}: start", self.start, 0.0, 1.0, "control_start")
        _number(f"{where}: end", self.end, 0.0, 1.0, "control_end")
        if self.start >= self.end:
            raise InvalidParams("control_start",
                                f"{where}: start {self.start:g} must be before end {self.end:g}")
        if not isinstance(self.guess_mode, bool):
            raise InvalidParams("control_mode", f"{where}: guess mode must be true or false")
        resolution = self.resolution
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                       or not 64 <= resolution <= 4096):
            raise InvalidParams("control_resolution", f"{where}: must be in [64, 4096], got {resolution!r}")
        for name, value in (("threshold_a", self.threshold_a), ("threshold_b", self.threshold_b)):
            if value is not None:
                _number(f"{where}: {name}", value, 0.0, 255.0, "control_threshold")


def validate_units(units: object, max_units: int = MAX_UNITS) -> None:
    """Every unit can run, and they agree on what diffusers takes once per run (the control mode)."""
    if not isinstance(units, tuple) or not all(isinstance(u, ControlUnit) for u in units):
        raise InvalidParams("control", "must be a tuple of ControlUnit")
    if len(units) > max_units:
        raise InvalidParams("control", f"at most {max_units} ControlNet units per request")
    for index, unit in enumerate(units):
        unit.validate(index)
    if len({unit.guess_mode for unit in units}) > 1:
        raise InvalidParams("control_mode", "diffusers runs one control mode for all units; give them one")


def strip_hash(name: str) -> str:
    """A1111 lists ControlNets as "NAME [hash]"; clients send that back."""
    match = _HASH.match(name.strip())
    return match.group(1) if match else name.strip()


# 1. JSON (core.codec): the image by its hash, everything else by value
def unit_to_json(unit: ControlUnit) -> dict[str, Any]:
    return {"model": unit.model, "image": unit.sha256, "preprocess": unit.preprocess.value,
            "weight": unit.weight, "start": unit.start, "end": unit.end, "guess_mode": unit.guess_mode,
            "resize": unit.resize.value, "resolution": unit.resolution, "threshold_a": unit.threshold_a,
            "threshold_b": unit.threshold_b}


_JSON_TYPES: dict[str, Any] = {
    "model": str, "image": str | None, "preprocess": str, "weight": int | float, "start": int | float,
    "end": int | float, "guess_mode": bool, "resize": str, "resolution": int | None,
    "threshold_a": int | float | None, "threshold_b": int | float | None}


def unit_from_json(data: object) -> ControlUnit:
    """A unit from `unit_to_json`'s form, without its picture (`image_sha256` names it)."""
    if not isinstance(data, dict) or "model" not in data:
        raise InvalidParams("control_units", f"recorded unit {data!r} is not an object with a model")
    for key, value in data.items():
        kind = _JSON_TYPES.get(key)
        if kind is None:
            raise InvalidParams("control_units", f"unknown unit field {key!r}")
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise InvalidParams("control_units", f"recorded {key} {value!r} has the wrong type")
    values = {k: v for k, v in data.items() if k != "image"}
    values["preprocess"] = Preprocess.parse(values.get("preprocess", "none"))
    values["resize"] = ResizeMode.parse(values.get("resize", ResizeMode.CROP_AND_RESIZE.value))
    for key in ("weight", "start", "end", "threshold_a", "threshold_b"):
        if values.get(key) is not None:
            values[key] = float(values[key])
    return ControlUnit(image_sha256=data.get("image"), **values)


def with_images(units: tuple[ControlUnit, ...], images: dict[str, Image.Image]) -> tuple[ControlUnit, ...]:
    """The units with the pictures their hashes name (those not found stay without: `validate` says so)."""
    return tuple(replace(u, image=images[u.image_sha256]) if u.image is None and u.image_sha256 in images
                 else u for u in units)


# 2. sd-webui-controlnet's infotext: ControlNet 0: "Module: canny, Model: NAME [hash], Weight: 1, ..."
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")


def infotext_value(unit: ControlUnit, model_label: str) -> str:
    """One unit as sd-webui-controlnet's `serialize_unit` writes it (A1111 quotes the whole value)."""
    a, b = unit.thresholds
    fields: dict[str, Any] = {
        "Module": unit.preprocess.a1111, "Model": model_label, "Weight": unit.weight,
        "Resize Mode": unit.resize.value, "Processor Res": unit.resolution if unit.resolution else None,
        "Threshold A": a, "Threshold B": b, "Guidance Start": unit.start, "Guidance End": unit.end,
        "Pixel Perfect": unit.resolution is None,
        "Control Mode": CONTROL_MODES[2 if unit.guess_mode else 0],
    }
    return ", ".join(f"{key}: {_plain(value)}" for key, value in fields.items() if value is not None)


def units_from_infotext(fields: dict[str, str]) -> tuple[ControlUnit, ...]:
    """The units an infotext's `ControlNet N` fields describe, without their pictures."""
    units = []
    for key in sorted((k for k in fields if re.fullmatch(r"ControlNet \d+", k)), key=lambda k: int(k[11:])):
        values = dict(item.strip().split(": ", 1) for item in fields[key].split(",") if ": " in item)
        try:
            mode = values.get("Control Mode", CONTROL_MODES[0])
            units.append(ControlUnit(
                model=strip_hash(values.get("Model", "")),
                preprocess=Preprocess.parse(values.get("Module", "none")),
                weight=float(values.get("Weight", 1)), start=float(values.get("Guidance Start", 0)),
                end=float(values.get("Guidance End", 1)), guess_mode=mode == CONTROL_MODES[2],
                resize=ResizeMode.parse(values.get("Resize Mode", ResizeMode.CROP_AND_RESIZE.value)),
                resolution=(None if values.get("Pixel Perfect", "True") == "True"
                            else int(float(values.get("Processor Res", 512)))),
                threshold_a=_optional(values.get("Threshold A")),
                threshold_b=_optional(values.get("Threshold B")),
            ))
        except ValueError:
            raise InvalidParams("control", f"infotext {key!r} cannot be read: {fields[key]!r}") from None
    return tuple(units)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _optional(text: str | None) -> float | None:
    return None if text is None or text == "-1" else float(text)


def _number(what: str, value: object, low: float, high: float, field_name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidParams(field_name, f"{what} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidParams(field_name, f"{what} must be within [{low:g}, {high:g}], got {value:g}")
