"""`keypaint generate`'s hires fix and outpainting options, and the request fields they make."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from keypaint.core.hires import DEFAULT_STRENGTH, HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.errors import InvalidParams

Hires = Annotated[
    float | None,
    typer.Option("--hires", help="hires fix: upscale the picture SCALE times and paint it again (img2img)"),
]
HiresUpscaler = Annotated[
    str | None,
    typer.Option(help="hires upscaler: Latent, Lanczos, Nearest or a model file in <home>/upscalers "
                      "[default: Latent]"),
]
HiresSteps = Annotated[
    int | None, typer.Option(help="hires: steps of the second pass [default: --steps]")
]
HiresStrength = Annotated[
    float | None,
    typer.Option(help="hires: how much of the upscaled picture to noise away, 0..1 "
                      f"[default: {DEFAULT_STRENGTH}]"),
]
OutpaintSides = Annotated[
    str | None,
    typer.Option("--outpaint", help="extend the --init image: SIDE:PIXELS,... e.g. left:64,up:32 "
                                    "(left, right, up, down; multiples of 8)"),
]
# GenerationParams' fields -> the options that set them, for errors
OPTIONS = {"hires": "--hires", "outpaint": "--outpaint"}


def hires_overrides(scale: float | None, upscaler: str | None, steps: int | None, strength: float | None,
                    outpaint: str | None) -> dict[str, Any]:
    """The request fields these options set (none when none is given); `InvalidParams` for bad ones."""
    values: dict[str, Any] = {}
    if scale is None:
        given = [name for name, value in (("--hires-upscaler", upscaler), ("--hires-steps", steps),
                                          ("--hires-strength", strength)) if value is not None]
        if given:
            raise InvalidParams(given[0], "needs --hires SCALE (e.g. --hires 2)")
    else:
        options = {"scale": scale, "upscaler": upscaler, "steps": steps, "strength": strength}
        hires = HiresOptions(**{k: v for k, v in options.items() if v is not None})
        hires.validate()
        values["hires"] = hires
    if outpaint is not None:
        values["outpaint"] = Outpaint.parse(outpaint)
    return values
