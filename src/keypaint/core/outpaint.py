"""`Outpaint`: extend a picture by some pixels on any side, painted by the model's inpainting path.

The init image is placed on a bigger canvas, the new border filled with its own edge colours (blurred, A1111's
"fill"), and a mask covers the border plus `feather` pixels of the picture, so the seam itself is repainted.
The model inpaints the canvas (`Painter` hands the engines a plain inpaint request); then the original is
laid back over the result through a feathered mask: the picture's inside keeps its exact pixels, the new
border is the model's, and the `feather` band between them fades from one into the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    from keypaint.core.params import GenerationParams

SIDES = ("left", "right", "up", "down")
MAX_PIXELS_PER_SIDE = 4096
MAX_FEATHER = 256
FILL_BLUR = 8  # radius of the blur over the edge-coloured border (a smooth start for the model)


@dataclass(frozen=True)
class Outpaint:
    """Pixels added on each side (multiples of 8), and the width of the blended seam."""

    left: int = 0
    right: int = 0
    up: int = 0
    down: int = 0
    feather: int = 16  # pixels of the picture next to each new side repainted and faded into the new part

    @classmethod
    def parse(cls, text: str) -> Outpaint:
        """ "left:64,up:32" (any of left, right, up, down and feather, each at most once)."""
        values: dict[str, int] = {}
        for part in (p.strip() for p in str(text).split(",")):
            name, sep, amount = part.partition(":")
            name = name.strip().lower()
            if not sep or name not in (*SIDES, "feather"):
                raise InvalidParams("outpaint", f"expected SIDE:PIXELS such as left:64,up:32 (sides: "
                                    f"{', '.join(SIDES)}), got {part!r}")
            if name in values:
                raise InvalidParams("outpaint", f"{name} is given twice")
            try:
                values[name] = int(amount.strip())
            except ValueError:
                raise InvalidParams("outpaint", f"{name}: expected a whole number of pixels, got "
                                    f"{amount.strip()!r}") from None
        outpaint = cls(**values)
        outpaint.validate()
        return outpaint

    def text(self) -> str:
        """The `parse` form: "left:64,up:32" (and the feather when it is not the default)."""
        parts = [f"{side}:{getattr(self, side)}" for side in SIDES if getattr(self, side)]
        if self.feather != Outpaint.feather:
            parts.append(f"feather:{self.feather}")
        return ",".join(parts)

    def validate(self) -> None:
        for name in (*SIDES, "feather"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParams("outpaint", f"{name} must be a whole number of pixels, got {value!r}")
            high = MAX_FEATHER if name == "feather" else MAX_PIXELS_PER_SIDE
            if not 0 <= value <= high:
                raise InvalidParams("outpaint", f"{name} must be within [0, {high}], got {value}")
            if name != "feather" and value % 8:
                raise InvalidParams("outpaint", f"{name} must be a multiple of 8, got {value}")
        if not any(getattr(self, side) for side in SIDES):
            raise InvalidParams("outpaint", "extend at least one side, e.g. left:64")

    def extended(self, width: int, height: int) -> tuple[int, int]:
        """The picture's size once a `width` x `height` picture is extended."""
        return width + self.left + self.right, height + self.up + self.down

    def inner(self, width: int, height: int) -> tuple[int, int]:
        """The init image's size inside a `width` x `height` result; `InvalidParams` if nothing is left."""
        inner = (width - self.left - self.right, height - self.up - self.down)
        if min(inner) < 8:
            raise InvalidParams("outpaint", f"{self.text()} leaves no room for the picture in "
                                f"{width}x{height}")
        return inner

    def inpaint_request(self, params: GenerationParams) -> GenerationParams:
        """The plain inpaint request that paints the new border: canvas, mask, no outpaint."""
        assert params.init_image is not None and params.width is not None and params.height is not None
        canvas = self.canvas(params.init_image, params.width, params.height)
        return replace(params, init_image=canvas, mask=self.mask(params.width, params.height), outpaint=None)

    def canvas(self, image: Image.Image, width: int, height: int) -> Image.Image:
        """`image` (resized to the inside) on a `width` x `height` canvas whose border repeats its edges."""
        inner = self.inner(width, height)
        picture = np.asarray(image.convert("RGB").resize(inner, Image.Resampling.LANCZOS)
                             if image.size != inner else image.convert("RGB"))
        padded = np.pad(picture, ((self.up, self.down), (self.left, self.right), (0, 0)), mode="edge")
        filled = Image.fromarray(padded).filter(ImageFilter.GaussianBlur(FILL_BLUR))
        filled.paste(Image.fromarray(picture), (self.left, self.up))
        return filled

    def mask(self, width: int, height: int) -> Image.Image:
        """What the model repaints (white): the new border and the `feather` band next to it."""
        return Image.fromarray(np.where(self._ramp(width, height) > 0, 255, 0).astype(np.uint8), "L")

    def blend(self, painted: Image.Image, canvas: Image.Image) -> Image.Image:
        """`painted` over `canvas` (which holds the original inside) through the feathered mask."""
        alpha = self._ramp(*painted.size)[..., None]
        mixed = alpha * np.asarray(painted.convert("RGB"), np.float32) + (1 - alpha) * np.asarray(
            canvas.convert("RGB"), np.float32)
        return Image.fromarray(np.clip(np.round(mixed), 0, 255).astype(np.uint8))

    def _ramp(self, width: int, height: int) -> np.ndarray:
        """Per pixel, how much of the painted picture to keep: 1 on the new border, fading linearly to 0 at
        `feather` pixels inside the original, 0 further in (sides with nothing added leave no band)."""
        x, y = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        inner_w, inner_h = self.inner(width, height)
        band = float(self.feather + 1)
        # distance into the original from each extended side, in pixels (<= 0 on the new border)
        along_x = [np.clip(1 - (x - self.left + 1) / band, 0, 1) if self.left else np.zeros_like(x),
                   np.clip(1 - (self.left + inner_w - x) / band, 0, 1) if self.right else np.zeros_like(x)]
        along_y = [np.clip(1 - (y - self.up + 1) / band, 0, 1) if self.up else np.zeros_like(y),
                   np.clip(1 - (self.up + inner_h - y) / band, 0, 1) if self.down else np.zeros_like(y)]
        ramp_x, ramp_y = np.maximum(*along_x), np.maximum(*along_y)
        return np.maximum(ramp_x[None, :], ramp_y[:, None])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Outpaint:
        if not isinstance(data, dict):
            raise InvalidParams("outpaint", f"recorded value {data!r} is not an object")
        for key, value in data.items():
            if key not in (*SIDES, "feather"):
                raise InvalidParams("outpaint", f"{key!r} is not an outpaint side")
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParams("outpaint", f"recorded {key} {value!r} has the wrong type")
        return cls(**data)
