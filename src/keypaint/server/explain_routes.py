"""The "How it works" views over HTTP: POST /api/explain/{view} answers one figure (PNG, or a GIF for the
reverse chain's animation), made by the same `keypaint.explain` functions as `keypaint explain`.

Every request is checked before any compute (422 naming the field) and bounded like the job API (steps,
pixels x steps, list lengths). The figure is made while holding the model (`ModelHost.use`), so it never
runs beside a generation on the same model; one figure at a time, a second request meanwhile gets 429.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.keywords.syntax import keywords as split_keywords
from keypaint.server.errors import FieldError, rename
from keypaint.server.fields import Float, Int, Text
from keypaint.server.state import ServerState

MAX_STEPS = 50  # one run of a figure (the reverse chain keeps and decodes every step)
MAX_RUNS = 12  # pictures in one figure (compare: samplers x step counts; guidance: scales)
MAX_TIMESTEPS = 12  # columns of the forward strip
MAX_KEYWORDS = 8  # attention maps in one figure
DEFAULT_SAMPLERS = ("DDPM", "DDIM", "DPM++ 2M")
DEFAULT_STEP_COUNTS = (5, 10, 20)
DEFAULT_SCALES = (1.0, 2.0, 4.0, 7.0, 12.0)
DEFAULT_TIMESTEPS = (0, 50, 100, 200, 300, 500, 700, 1000)


class View(StrEnum):
    SCHEDULES = "schedules"  # beta_t, alpha_bar_t, SNR of the known schedules and the model's
    FORWARD = "forward"  # x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at chosen t
    REVERSE = "reverse"  # decoded x_t, predicted x_0 and eps at every step (grid or GIF)
    COMPARE = "compare"  # same seed, several samplers x step counts
    GUIDANCE = "guidance"  # same seed, several CFG scales
    ATTENTION = "attention"  # cross-attention per keyword over the picture
    LATENT = "latent"  # VAE round trip: compression and PSNR


class ExplainRequest(BaseModel):
    """POST /api/explain/{view}; each view reads the fields it needs. Unknown fields are a 422."""

    model_config = ConfigDict(extra="forbid")

    keywords: list[Text] | None = None  # the picture's keywords (all views but schedules)
    negative_keywords: list[Text] | None = None
    seed: Int = -1  # -1: random (the answer's X-Keypaint-Seed header says which)
    steps: Int = 20
    sampler: str = Sampler.DPMPP_2M_KARRAS.value
    guidance_scale: Float = 7.0
    width: Int | None = None  # None: the model's native size
    height: Int | None = None
    timesteps: list[Int] | None = None  # forward: steps t of the forward chain, 0..T
    samplers: list[str] | None = None  # compare
    step_counts: list[Int] | None = None  # compare
    scales: list[Float] | None = None  # guidance
    attention_keywords: list[Text] | None = None  # attention: keywords to map (default: all)
    image: str | None = None  # forward, latent: a picture (base64 / data: URL) instead of generating one
    animation: bool = False  # reverse: a GIF, one frame a step, instead of the grid


@dataclass
class Figure:
    """A checked request: `make(painter, folder)` writes the figure and returns its path and a caption."""

    make: Callable[[Painter, Path], tuple[Path, str]]
    seed: int | None
    needs_model: bool = True


def explain_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api/explain", tags=["explain"])
    busy = threading.Lock()

    @router.get("")
    def views() -> dict[str, Any]:
        """What the page needs to fill its form: the views and the limits."""
        return {"views": [v.value for v in View], "max_steps": MAX_STEPS, "max_runs": MAX_RUNS,
                "default_timesteps": list(DEFAULT_TIMESTEPS), "default_samplers": list(DEFAULT_SAMPLERS),
                "default_scales": list(DEFAULT_SCALES)}

    @router.post("/{view}")
    async def explain(view: View, body: ExplainRequest) -> Response:
        figure = await run_in_threadpool(plan, state, view, body)  # 422 here, before any compute
        if not busy.acquire(blocking=False):
            message = "another explain figure is being made; try again in a few seconds"
            return JSONResponse({"detail": message, "error": message}, status_code=429,
                                headers={"Retry-After": "5"})
        try:
            path_bytes, caption = await run_in_threadpool(render, state, figure)
        finally:
            busy.release()
        media = "image/gif" if view == View.REVERSE and body.animation else "image/png"
        headers = {"Cache-Control": "no-store", "X-Keypaint-Caption": caption}
        if figure.seed is not None:
            headers["X-Keypaint-Seed"] = str(figure.seed)
        return Response(path_bytes, media_type=media, headers=headers)

    return router


def render(state: ServerState, figure: Figure) -> tuple[bytes, str]:
    """Make the figure in a private temporary folder, holding the model if it needs one."""
    with tempfile.TemporaryDirectory(prefix="keypaint-explain-") as folder:
        if figure.needs_model:
            with state.host.use(None) as painter:
                path, caption = figure.make(painter, Path(folder))
        else:
            path, caption = figure.make(state.host.current, Path(folder))
        return path.read_bytes(), caption


def plan(state: ServerState, view: View, body: ExplainRequest) -> Figure:
    """Check `body` for `view` (cheap, no model call) and return how to make the figure."""
    from keypaint.explain.flow import check_view

    current = state.host.current
    if view != View.SCHEDULES and current.loaded:  # (a frozen built-in model is no flow model)
        try:
            check_view(current.model, view.value)  # SD3/Flux: DDPM's chains do not apply
        except InvalidParams as err:
            raise FieldError("view", err.reason) from None
    if view == View.SCHEDULES:
        return Figure(_schedules, seed=None, needs_model=False)
    picture = None
    if body.image:
        if view not in (View.FORWARD, View.LATENT):
            raise FieldError("image", f"the {view.value} view makes its own picture; only forward and latent "
                                      "take one")
        picture = state.upload(body.image, "image")[1]
    params = _params(state, body, needs_keywords=picture is None)
    if view == View.FORWARD:
        return _forward_plan(state, body, params, picture)
    if view == View.LATENT:
        if picture is None:
            _check_budget(state, params, [params.steps])
        return Figure(lambda p, f: _latent(p, f, params, picture), seed=params.seed)
    if view == View.REVERSE:
        _check_budget(state, params, [params.steps])
        return Figure(lambda p, f: _reverse(p, f, params, body.animation), seed=params.seed)
    if view == View.COMPARE:
        return _compare_plan(state, body, params)
    if view == View.GUIDANCE:
        scales = list(body.scales or DEFAULT_SCALES)
        _count("scales", scales, MAX_RUNS)
        for scale in scales:
            _checked(replace(params, guidance_scale=scale), state, {"guidance_scale": "scales"})
        _check_budget(state, params, [params.steps] * len(scales))
        return Figure(lambda p, f: _guidance(p, f, params, scales), seed=params.seed)
    return _attention_plan(state, body, params)


def _params(state: ServerState, body: ExplainRequest, *, needs_keywords: bool) -> GenerationParams:
    try:
        sampler = Sampler.parse(body.sampler)
    except InvalidParams as err:
        raise FieldError("sampler", str(err).split(": ", 1)[-1]) from None
    if body.steps > MAX_STEPS:
        raise FieldError("steps", f"at most {MAX_STEPS} for an explain figure, got {body.steps}")
    params = GenerationParams.from_keywords(body.keywords or [], body.negative_keywords, steps=body.steps,
                                            sampler=sampler, guidance_scale=body.guidance_scale,
                                            seed=body.seed, width=body.width, height=body.height)
    if needs_keywords and not params.prompt:
        raise FieldError("keywords", 'give some keywords, e.g. "red apple"')
    return _checked(params, state, {"prompt": "keywords"})


def _checked(params: GenerationParams, state: ServerState, names: dict[str, str]) -> GenerationParams:
    """`params` resolved against the current model (seed, size) and the server's limits."""
    try:
        resolved = state.host.current.resolve(params)
    except InvalidParams as err:
        raise rename(err, names) from None
    assert resolved.width is not None and resolved.height is not None
    if resolved.width * resolved.height > state.config.limits.max_pixels:
        raise FieldError("width", f"{resolved.width}x{resolved.height} is over the pixel budget of "
                                  f"{state.config.limits.max_pixels}")
    return resolved


def _check_budget(state: ServerState, params: GenerationParams, runs: list[int]) -> None:
    """The job API's pixels x steps budget, over every run the figure makes."""
    assert params.width is not None and params.height is not None
    work = params.width * params.height * sum(runs)
    if work > state.config.max_pixel_steps:
        raise FieldError("steps", f"{work} pixel-steps in this figure, over this server's budget of "
                                  f"{state.config.max_pixel_steps}; ask for fewer steps, runs or pixels")


def _count(field: str, values: list[Any], most: int) -> None:
    if not values:
        raise FieldError(field, "give at least one value")
    if len(values) > most:
        raise FieldError(field, f"at most {most} values, got {len(values)}")


def _forward_plan(state: ServerState, body: ExplainRequest, params: GenerationParams,
                  picture: Image.Image | None) -> Figure:
    from keypaint.explain.schedules import check_timesteps, training_scheduler

    timesteps = list(body.timesteps if body.timesteps is not None else DEFAULT_TIMESTEPS)
    _count("timesteps", timesteps, MAX_TIMESTEPS)
    try:  # against the current model's training schedule (0..T)
        check_timesteps(timesteps, training_scheduler(state.host.current.base_scheduler_config))
    except InvalidParams as err:
        raise rename(err, {"steps": "timesteps"}) from None
    if picture is None:
        _check_budget(state, params, [params.steps])
    return Figure(lambda p, f: _forward(p, f, params, timesteps, picture), seed=params.seed)


def _compare_plan(state: ServerState, body: ExplainRequest, params: GenerationParams) -> Figure:
    names = list(body.samplers or DEFAULT_SAMPLERS)
    counts = list(body.step_counts or DEFAULT_STEP_COUNTS)
    _count("samplers", names, MAX_RUNS)
    _count("step_counts", counts, MAX_RUNS)
    try:
        samplers = [Sampler.parse(name) for name in names]
    except InvalidParams as err:
        raise FieldError("samplers", str(err).split(": ", 1)[-1]) from None
    if len(samplers) * len(counts) > MAX_RUNS:
        raise FieldError("step_counts", f"{len(samplers)} samplers x {len(counts)} step counts is over "
                                        f"{MAX_RUNS} pictures")
    for count in counts:
        if not 1 <= count <= MAX_STEPS:
            raise FieldError("step_counts", f"{count} is outside 1..{MAX_STEPS}")
    _check_budget(state, params, counts * len(samplers))
    return Figure(lambda p, f: _compare(p, f, params, samplers, counts), seed=params.seed)


def _attention_plan(state: ServerState, body: ExplainRequest, params: GenerationParams) -> Figure:
    wanted = [k.strip() for k in body.attention_keywords or [] if k.strip()]
    if len(wanted) > MAX_KEYWORDS:
        raise FieldError("attention_keywords", f"at most {MAX_KEYWORDS} keywords, got {len(wanted)}")
    folded = params.prompt.casefold()
    for word in wanted:  # a keyword that no keyword of the prompt contains fails before any compute
        if word.casefold() not in folded:
            known = ", ".join(repr(k) for k in split_keywords(params.prompt))
            raise FieldError("attention_keywords", f"{word!r} is not in the keywords; they are: {known}")
    _check_budget(state, params, [params.steps])
    return Figure(lambda p, f: _attention(p, f, params, wanted or None), seed=params.seed)


# --- making the figures (called holding the model) -----------------------------------------------------
def _schedules(painter: Painter, folder: Path) -> tuple[Path, str]:
    from keypaint.explain.schedules import plot_schedules

    extra = {f"{painter.model.name} (training)": dict(painter.base_scheduler_config)}
    return plot_schedules(folder / "schedules.png", extra), "beta_t, alpha_bar_t and SNR_t of the schedules"


def _picture(painter: Painter, params: GenerationParams, picture: Image.Image | None) -> Image.Image:
    if picture is not None:
        return picture
    return painter.generate(replace(params, batch_size=1, batch_count=1))[0].image


def _forward(painter: Painter, folder: Path, params: GenerationParams, timesteps: list[int],
             picture: Image.Image | None) -> tuple[Path, str]:
    from keypaint.explain.forward import forward_chain, save_forward

    assert params.seed is not None and params.width is not None and params.height is not None
    try:
        chain = forward_chain(painter.model, _picture(painter, params, picture), timesteps, seed=params.seed,
                              scheduler_config=painter.base_scheduler_config,
                              size=(params.width, params.height))
    except InvalidParams as err:
        raise rename(err, {"steps": "timesteps"}) from None
    [path] = save_forward(chain, folder / "forward.png")
    return path, f"forward chain at t = {', '.join(map(str, timesteps))}, seed {params.seed}"


def _reverse(painter: Painter, folder: Path, params: GenerationParams, animation: bool) -> tuple[Path, str]:
    from keypaint.explain.reverse import record_reverse, save_reverse

    recording = record_reverse(painter, params)
    if animation:
        [path] = save_reverse(recording, painter.model, None, folder / "reverse.gif")
    else:
        [path] = save_reverse(recording, painter.model, folder / "reverse.png")
    return path, f"reverse chain: {len(recording.timesteps)} U-Net calls, seed {params.seed}"


def _compare(painter: Painter, folder: Path, params: GenerationParams, samplers: list[Sampler],
             counts: list[int]) -> tuple[Path, str]:
    from keypaint.explain.compare import compare_samplers, save_sampler_grid

    resolved, rows = compare_samplers(painter, params, samplers, counts)
    path = save_sampler_grid(resolved, samplers, counts, rows, folder / "samplers.png")
    return path, f"{len(samplers)} samplers x {len(counts)} step counts, seed {resolved.seed}"


def _guidance(painter: Painter, folder: Path, params: GenerationParams, scales: list[float]
              ) -> tuple[Path, str]:
    from keypaint.explain.compare import guidance_strip, save_guidance_strip

    resolved, images = guidance_strip(painter, params, scales)
    path = save_guidance_strip(resolved, scales, images, folder / "guidance.png")
    return path, f"guidance scales {', '.join(f'{s:g}' for s in scales)}, seed {resolved.seed}"


def _attention(painter: Painter, folder: Path, params: GenerationParams, wanted: list[str] | None
               ) -> tuple[Path, str]:
    from keypaint.explain.attention import attention_maps, save_attention

    try:
        result = attention_maps(painter, params, wanted)
    except InvalidParams as err:
        raise rename(err, {"keyword": "attention_keywords"}) from None
    [path] = save_attention(result, folder / "attention.png")
    return path, f"cross-attention of {len(result.maps)} keywords over {result.layer_calls} layer calls, " \
                 f"seed {params.seed}"


def _latent(painter: Painter, folder: Path, params: GenerationParams, picture: Image.Image | None
            ) -> tuple[Path, str]:
    from keypaint.explain.latent import roundtrip, save_roundtrip, step_costs

    assert params.width is not None and params.height is not None
    result = roundtrip(painter.model, _picture(painter, params, picture), (params.width, params.height))
    c, h, w = result.latents.shape[1:]
    # FLOPs are counted on the meta device; the pixel-space U-Net is not run here (it is the slow one)
    latent_step, pixel_step, _ = step_costs(painter.model, params.height, params.width, repeats=1,
                                            max_timed_gflops=0)
    caption = (f"latent {w}x{h}x{c}: {result.compression:.0f}x fewer numbers, PSNR {result.psnr:.2f} dB; "
               f"one guided denoising step costs {pixel_step.flops / latent_step.flops:,.0f}x fewer FLOPs "
               f"in latent space ({latent_step.flops / 1e9:,.2f} vs {pixel_step.flops / 1e9:,.1f} GFLOPs)")
    return save_roundtrip(result, folder / "latent.png"), caption
