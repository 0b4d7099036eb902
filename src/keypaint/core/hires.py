"""`HiresOptions`: A1111's "hires fix", a second img2img pass on a bigger picture, as one request field.

txt2img paints at `width` x `height`; the picture (its latents for a "Latent" upscaler) is upscaled by
`scale`, or to `resize_x` x `resize_y`, and the same model runs img2img on it at `strength` for `steps`
(0: the first pass's steps). A1111 names: `enable_hr` (a request with hires), `hr_scale`, `hr_upscaler`,
`hr_second_pass_steps`, `denoising_strength`, `hr_resize_x`, `hr_resize_y`; its infotext writes
`Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Denoising strength: 0.7` (or `Hires resize:
WxH`). `core.hires_pass` runs it; upscaler model files are `models.upscalers`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from keypaint.errors import InvalidParams

MAX_SCALE = 8.0
# A1111's latent upscale modes: name -> (torch interpolate mode, antialias)
LATENT_MODES = {
    "Latent": ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_UPSCALERS = ("Lanczos", "Nearest")  # PIL resampling; other names are model files in <home>/upscalers
DEFAULT_STRENGTH = 0.7  # A1111's default hires denoising strength


@dataclass(frozen=True)
class HiresOptions:
    """The second pass of a txt2img request."""

    scale: float = 2.0  # upscale factor of the first picture (unused when resize_x or resize_y is set)
    upscaler: str = "Latent"  # a LATENT_MODES or PIXEL_UPSCALERS name, or an upscaler file's name
    steps: int = 0  # steps of the second pass; 0: the first pass's
    strength: float = DEFAULT_STRENGTH  # how much of the upscaled picture is noised away (0..1)
    resize_x: int = 0  # target width instead of scale (0: from resize_y and the aspect ratio)
    resize_y: int = 0

    @property
    def latent(self) -> bool:
        return self.upscaler in LATENT_MODES

    @property
    def is_model(self) -> bool:
        """The upscaler is a model file (models.upscalers), not a built-in resampling."""
        return not self.latent and self.upscaler not in PIXEL_UPSCALERS

    def validate(self) -> None:
        """`InvalidParams` ("hires") naming the first option that cannot run; sizes are `target`'s."""
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale != scale:
            raise InvalidParams("hires", f"scale must be a number, got {self.scale!r}")
        if not 1.0 <= self.scale <= MAX_SCALE:
            raise InvalidParams("hires", f"scale must be within [1, {MAX_SCALE:g}], got {self.scale:g}")
        if not isinstance(self.upscaler, str) or not self.upscaler.strip():
            raise InvalidParams("hires", f"upscaler must be a name, got {self.upscaler!r}")
        _whole("steps", self.steps, 0)
        if (isinstance(self.strength, bool) or not isinstance(self.strength, int | float)
                or not 0.0 < self.strength <= 1.0):
            raise InvalidParams("hires", f"strength must be within (0, 1], got {self.strength!r}")
        for name, value in (("resize_x", self.resize_x), ("resize_y", self.resize_y)):
            _whole(name, value, 0)
            if value % 8:
                raise InvalidParams("hires", f"{name} must be a multiple of 8, got {value}")

    def check_target(self, width: int, height: int, max_pixels: int) -> None:
        """`InvalidParams` unless the second pass's picture, from a `width` x `height` one, can be made."""
        (cover_w, cover_h), (final_w, final_h) = self.target(width, height)
        if min(final_w, final_h) < 8:
            raise InvalidParams("hires", f"{width}x{height} upscaled gives {final_w}x{final_h}, under 8 px")
        if max(final_w, final_h) > 16384 or cover_w * cover_h > max_pixels:
            raise InvalidParams("hires", f"{width}x{height} upscaled to {cover_w}x{cover_h} is over the "
                                f"pixel budget of {max_pixels}")

    def second_steps(self, first_steps: int) -> int:
        return self.steps or first_steps

    def target(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((upscale to), (final size)) for a first picture of `width` x `height`, as A1111 computes them.

        By `scale`, or to `resize_x` (`resize_y`) with the other side from the aspect ratio; with both, the
        picture is upscaled to cover resize_x x resize_y and its centre kept. Sides are rounded down to a
        multiple of 8 (the latents' grid).
        """
        if not self.resize_x and not self.resize_y:
            size = (_floor8(width * self.scale), _floor8(height * self.scale))
            return size, size
        if not self.resize_y:
            size = (self.resize_x, _floor8(self.resize_x * height / width))
            return size, size
        if not self.resize_x:
            size = (_floor8(self.resize_y * width / height), self.resize_y)
            return size, size
        final = (self.resize_x, self.resize_y)
        if width / height < self.resize_x / self.resize_y:  # the width fills, the height is cropped
            cover = (self.resize_x, _ceil8(self.resize_x * height / width))
        else:
            cover = (_ceil8(self.resize_y * width / height), self.resize_y)
        return cover, final

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> HiresOptions:
        """From `to_json`'s form; `InvalidParams` for unknown keys or wrong types."""
        if not isinstance(data, Mapping):
            raise InvalidParams("hires", f"recorded value {data!r} is not an object")
        types = {"scale": (int, float), "upscaler": (str,), "steps": (int,), "strength": (int, float),
                 "resize_x": (int,), "resize_y": (int,)}
        for key, value in data.items():
            if key not in types:
                raise InvalidParams("hires", f"{key!r} is not a hires option")
            if isinstance(value, bool) or not isinstance(value, types[key]):
                raise InvalidParams("hires", f"recorded {key} {value!r} has the wrong type")
        return cls(**{k: float(v) if k in ("scale", "strength") else v for k, v in data.items()})

    def infotext(self) -> dict[str, str | int | float]:
        """A1111's infotext fields (the "Denoising strength" among them, which txt2img writes for hires)."""
        fields: dict[str, str | int | float] = {}
        if self.resize_x or self.resize_y:
            fields["Hires resize"] = f"{self.resize_x}x{self.resize_y}"
        else:
            fields["Hires upscale"] = self.scale
        if self.steps:
            fields["Hires steps"] = self.steps
        fields["Hires upscaler"] = self.upscaler
        fields["Denoising strength"] = self.strength
        return fields

    @classmethod
    def from_infotext(cls, info: Mapping[str, str]) -> HiresOptions | None:
        """The options an infotext's fields describe, None when it has no "Hires upscale"/"Hires resize"."""
        if "Hires upscale" not in info and "Hires resize" not in info:
            return None
        values: dict[str, Any] = {}
        try:
            if "Hires upscale" in info:
                values["scale"] = float(info["Hires upscale"])
            if "Hires resize" in info:
                x, _, y = info["Hires resize"].strip().partition("x")
                values["resize_x"], values["resize_y"] = int(x), int(y)
            if "Hires steps" in info:
                values["steps"] = int(info["Hires steps"])
            if "Denoising strength" in info:
                values["strength"] = float(info["Denoising strength"])
        except ValueError:
            raise InvalidParams("hires", "infotext 'Hires ...' fields must be numbers") from None
        if "Hires upscaler" in info:
            values["upscaler"] = info["Hires upscaler"].strip()
        return cls(**values)


def _whole(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams("hires", f"{name} must be a whole number, got {value!r}")
    if value < low:
        raise InvalidParams("hires", f"{name} must be at least {low}, got {value}")


def _floor8(value: float) -> int:
    return int(value) // 8 * 8


def _ceil8(value: float) -> int:
    return -(-math.ceil(value) // 8) * 8
