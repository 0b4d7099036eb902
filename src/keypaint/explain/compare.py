"""Same seed, one thing changed: samplers x step counts, and classifier-free guidance scales.

Each picture is made by `Painter.generate`, so these figures show exactly what `keypaint generate` makes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.explain.figures import save_grid

DEFAULT_SAMPLERS = (Sampler.DDPM, Sampler.DDIM, Sampler.DPMPP_2M)
DEFAULT_STEP_COUNTS = (5, 10, 20, 50)
DEFAULT_SCALES = (1.0, 2.0, 4.0, 7.0, 12.0)


def _one(painter: Painter, params: GenerationParams) -> Image.Image:
    return painter.generate(replace(params, batch_size=1, batch_count=1))[0].image


def compare_samplers(
    painter: Painter,
    params: GenerationParams,
    samplers: list[Sampler],
    step_counts: list[int],
) -> tuple[GenerationParams, list[list[Image.Image]]]:
    """A picture for every (sampler, steps) pair from the same x_T: rows are samplers, columns steps."""
    if not samplers or not step_counts:
        raise InvalidParams("samplers", "give at least one sampler and one step count")
    params = painter.resolve(params)
    for steps in step_counts:
        replace(params, steps=steps).validate(painter.limits)
    rows = [[_one(painter, replace(params, sampler=s, steps=n)) for n in step_counts] for s in samplers]
    return params, rows


def save_sampler_grid(
    params: GenerationParams, samplers: list[Sampler], step_counts: list[int], rows: list[list[Image.Image]],
    path: Path,
) -> Path:
    title = f"{params.prompt!r}, seed {params.seed}, CFG {params.guidance_scale:g}: same x_T, other samplers"
    return save_grid(rows, path, row_labels=[s.value for s in samplers],
                     col_labels=[f"{n} steps" for n in step_counts], title=title)


def guidance_strip(
    painter: Painter, params: GenerationParams, scales: list[float]
) -> tuple[GenerationParams, list[Image.Image]]:
    """The same seed at each guidance scale w.

    Classifier-free guidance (Ho & Salimans 2022): eps = eps_uncond + w (eps_cond - eps_uncond), off at w<=1
    """
    if not scales:
        raise InvalidParams("scales", "give at least one guidance scale")
    params = painter.resolve(params)
    for scale in scales:
        replace(params, guidance_scale=scale).validate(painter.limits)
    return params, [_one(painter, replace(params, guidance_scale=scale)) for scale in scales]


def save_guidance_strip(params: GenerationParams, scales: list[float], images: list[Image.Image],
                        path: Path) -> Path:
    title = f"{params.prompt!r}, {params.sampler.value}, {params.steps} steps, seed {params.seed}"
    return save_grid([images], path, col_labels=[f"CFG {s:g}" + (" (off)" if s <= 1 else "") for s in scales],
                     title=title)
