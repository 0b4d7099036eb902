"""The hires fix and outpainting in both APIs: keypaint's own request objects and A1111's fields.

The job API takes `hires` and `outpaint` objects holding `HiresOptions`' and `Outpaint`'s own fields. A1111's
txt2img takes `enable_hr` with `hr_scale`, `hr_upscaler`, `hr_second_pass_steps`, `hr_resize_x/y` and
`denoising_strength`; its img2img takes the "Poor man's outpainting" script (`script_name`, and
`script_args` = [pixels, mask_blur, inpainting_fill, directions]) as outpainting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from keypaint.core.hires import DEFAULT_STRENGTH, LATENT_MODES, PIXEL_UPSCALERS, HiresOptions
from keypaint.core.outpaint import SIDES, Outpaint
from keypaint.server.errors import FieldError
from keypaint.server.fields import Float, Int

OUTPAINT_SCRIPT = "poor man's outpainting"
__all__ = ["LATENT_MODES", "OUTPAINT_SCRIPT", "HiresField", "OutpaintField", "a1111_hires", "a1111_outpaint",
           "upscaler_list"]


class HiresField(BaseModel):
    """POST /api/jobs' `hires`: the second pass of a txt2img job."""

    model_config = ConfigDict(extra="forbid")

    scale: Float = 2.0
    upscaler: str = "Latent"  # Latent, Lanczos, Nearest or an upscaler file's name (GET /sdapi/v1/upscalers)
    steps: Int = 0  # 0: the job's steps
    strength: Float = DEFAULT_STRENGTH
    resize_x: Int = 0
    resize_y: Int = 0

    def options(self) -> HiresOptions:
        return HiresOptions(**self.model_dump())


class OutpaintField(BaseModel):
    """POST /api/jobs' `outpaint`: pixels added to each side of the init image (multiples of 8)."""

    model_config = ConfigDict(extra="forbid")

    left: Int = 0
    right: Int = 0
    up: Int = 0
    down: Int = 0
    feather: Int = 16

    def options(self) -> Outpaint:
        return Outpaint(**self.model_dump())


def a1111_hires(body: Any) -> HiresOptions | None:
    """`HiresOptions` from an A1111 txt2img body (None without `enable_hr`); 422 for what keypaint lacks."""
    if not body.enable_hr:
        return None
    for name, same in (("hr_checkpoint_name", ("", "Use same checkpoint")),
                       ("hr_sampler_name", ("", "Use same sampler")), ("hr_prompt", ("",)),
                       ("hr_negative_prompt", ("",))):
        value = getattr(body, name, None)
        if value is not None and value not in same:
            raise FieldError(name, "keypaint's second pass uses the first pass's model, sampler and prompts")
    return HiresOptions(
        scale=body.hr_scale if body.hr_scale is not None else 2.0,
        upscaler=body.hr_upscaler or "Latent",
        steps=body.hr_second_pass_steps or 0,
        strength=body.denoising_strength if body.denoising_strength is not None else DEFAULT_STRENGTH,
        resize_x=body.hr_resize_x or 0,
        resize_y=body.hr_resize_y or 0,
    )


def a1111_outpaint(script_name: str | None, script_args: list[Any] | None) -> Outpaint | None:
    """`Outpaint` from A1111's "Poor man's outpainting" script and its arguments (None for no script)."""
    if not script_name:
        return None
    if script_name.strip().lower() != OUTPAINT_SCRIPT:
        raise FieldError("script_name", f"keypaint runs only the {OUTPAINT_SCRIPT!r} script")
    args = list(script_args or [])
    pixels, blur, fill, directions = (args + [128, 4, 0, list(SIDES)][len(args):])[:4]
    if isinstance(pixels, bool) or not isinstance(pixels, int):
        raise FieldError("script_args", f"pixels to expand must be a whole number, got {pixels!r}")
    if isinstance(blur, bool) or not isinstance(blur, int) or blur < 0:
        raise FieldError("script_args", f"mask blur must be a whole number >= 0, got {blur!r}")
    if fill not in (0, "fill"):
        raise FieldError("script_args", "keypaint fills the new area with the picture's edges (masked "
                                        f"content 'fill', 0), not {fill!r}")
    if not isinstance(directions, list) or not directions or any(d not in SIDES for d in directions):
        raise FieldError("script_args", f"directions must be a list of {', '.join(SIDES)}, got "
                                        f"{directions!r}")
    # A1111 blurs the mask by `mask_blur` pixels each way: keypaint's seam fades over twice that
    return Outpaint(**{side: pixels for side in directions}, feather=2 * blur)


def upscaler_list(home: Path | None) -> list[dict[str, Any]]:
    """GET /sdapi/v1/upscalers: the pixel upscalers and the model files, in A1111's shape."""
    from keypaint.models.upscalers import Upscalers

    entries = [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
               for name in PIXEL_UPSCALERS]
    entries += [{"name": name, "model_name": name, "model_path": None, "model_url": None, "scale": None}
                for name in Upscalers(home).names()]
    return entries
