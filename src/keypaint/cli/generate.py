"""`keypaint generate`: keywords in, pictures out, with the parameters stored in each file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keypaint.cli import control_options as control
from keypaint.cli.errors import option_names, stderr, user_errors
from keypaint.cli.hires_options import OPTIONS as HIRES_OPTIONS
from keypaint.cli.hires_options import (
    Hires,
    HiresSteps,
    HiresStrength,
    HiresUpscaler,
    OutpaintSides,
    hires_overrides,
)
from keypaint.cli.inputs import parse_size, read_image
from keypaint.cli.model_options import AllowPickle, MaxModelGb, model_size_limit
from keypaint.cli.speed_options import DeepCache, Fast, TokenMerging
from keypaint.core.params import GenerationParams, Limits, LoraRef, join_keywords
from keypaint.core.presets import apply_preset
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

console = Console(highlight=False)
# GenerationParams' field names -> the option a user types for each, so errors name what was typed
OPTIONS = {
    "prompt": "keywords", "negative_prompt": "--negative", "steps": "--steps", "sampler": "--sampler",
    "guidance_scale": "--cfg", "seed": "--seed", "width": "--size", "height": "--size", "size": "--size",
    "batch_size": "--batch", "batch_count": "--count", "init_image": "--init", "strength": "--strength",
    "mask": "--mask", "best_of": "--best-of", "lora": "--lora", "embedding": "--embedding",
    "expand_keywords": "--expand", "format": "--format", **control.OPTIONS, **HIRES_OPTIONS,
}


@user_errors
@option_names(OPTIONS)
def generate_command(
    keywords: Annotated[
        list[str] | None,
        typer.Argument(
            help='keywords, e.g. "red apple" fruit; A1111 emphasis works: "(red:1.3)", "[shadow]"'
        ),
    ] = None,
    negative: Annotated[list[str] | None, typer.Option("--negative", "-n", help="keywords to avoid")] = None,
    steps: Annotated[int | None, typer.Option(help="denoising steps [default: 20]")] = None,
    sampler: Annotated[
        str | None, typer.Option(help="sampler name, see `keypaint samplers` [default: DPM++ 2M Karras]")
    ] = None,
    cfg: Annotated[float | None, typer.Option("--cfg", help="guidance scale [default: 7]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed; -1 picks one at random [default: -1]")] = None,
    size: Annotated[
        str | None, typer.Option(help="WIDTHxHEIGHT, multiples of 8 [default: the model's]")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="pictures per batch; picture i uses seed+i")] = None,
    count: Annotated[int | None, typer.Option(help="batches to run one after another")] = None,
    init: Annotated[Path | None, typer.Option(help="init image: img2img (with --mask: inpainting)")] = None,
    strength: Annotated[
        float | None,
        typer.Option(help="img2img: how much of the init image to noise away, 0..1 [default: 0.75]"),
    ] = None,
    mask: Annotated[Path | None, typer.Option(help="inpainting mask, white = repaint")] = None,
    hires: Hires = None,
    hires_upscaler: HiresUpscaler = None,
    hires_steps: HiresSteps = None,
    hires_strength: HiresStrength = None,
    outpaint: OutpaintSides = None,
    model: Annotated[
        str | None,
        typer.Option(help="model name (see `keypaint models`), file or folder [default: the built-in model]"),
    ] = None,
    vae: Annotated[Path | None, typer.Option(help="a separate VAE file or folder")] = None,
    clip_l: Annotated[Path | None, typer.Option("--clip-l", help="SD3/Flux: a separate CLIP-L file")] = None,
    clip_g: Annotated[Path | None, typer.Option("--clip-g", help="SD3: a separate CLIP-G file")] = None,
    t5: Annotated[Path | None, typer.Option("--t5", help="SD3/Flux: a separate T5-XXL file")] = None,
    no_t5: Annotated[bool, typer.Option("--no-t5", help="SD3: run without T5 (less memory, weaker)")] = False,
    shift: Annotated[float | None, typer.Option(help="SD3/Flux: time shift of the sampling grid")] = None,
    distilled_cfg: Annotated[
        float | None, typer.Option("--distilled-cfg", help="Flux dev: distilled guidance [default: 3.5]")
    ] = None,
    lora: Annotated[
        list[str] | None,
        typer.Option(help="LoRA FILE:WEIGHT (or a name in <home>/loras), weight in [-2, 2]; repeatable"),
    ] = None,
    embedding: Annotated[
        list[str] | None,
        typer.Option(help="textual-inversion FILE (or a name in <home>/embeddings); repeatable"),
    ] = None,
    allow_pickle: AllowPickle = False,
    max_model_gb: MaxModelGb = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp16 on GPUs, fp32 on CPUs), fp32, fp16 or bf16")
    ] = "auto",
    fast: Fast = False,
    lcm: Annotated[
        bool,
        typer.Option(help="approximate: 4 LCM steps with the built-in model's LCM-LoRA, CFG 1 (~3x faster)"),
    ] = False,
    deep_cache: DeepCache = 1,
    token_merging: TokenMerging = 0.0,
    threads: Annotated[int | None, typer.Option(help="CPU threads [default: PyTorch's]")] = None,
    offload: Annotated[str, typer.Option(help="GPU low memory: none, model or sequential")] = "none",
    vae_tiling: Annotated[bool, typer.Option(help="decode large pictures tile by tile (low memory)")] = False,
    fp8_weights: Annotated[
        bool, typer.Option(help="approximate, low memory: store the denoiser (and T5) weights as fp8")
    ] = False,
    out: Annotated[Path, typer.Option(help="output folder; pictures go to OUT/YYYY-MM-DD/")] = Path(
        "outputs"
    ),
    from_image: Annotated[
        Path | None,
        typer.Option("--from", help="re-make a picture from its stored parameters (options given override)"),
    ] = None,
    best_of: Annotated[
        int | None,
        typer.Option(
            help="make N candidates per picture and keep the one the scorer matches best to the keywords"
        ),
    ] = None,
    expand: Annotated[
        bool | None,
        typer.Option(
            "--expand/--no-expand",
            help="add the tags the model was trained with to each keyword it knows [default: expand]",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="png, jpeg or webp")] = "png",
    no_watermark: Annotated[
        bool, typer.Option("--no-watermark", help="do not add the invisible AI watermark (recorded)")
    ] = False,
    no_c2pa: Annotated[
        bool, typer.Option("--no-c2pa", help="do not sign C2PA content credentials (recorded)")
    ] = False,
    max_pixels: Annotated[int, typer.Option(help="pixel budget per picture")] = Limits().max_pixels,
    prompts: Annotated[Path | None, typer.Option(
        help="a file of prompts (one a line, or JSON objects of parameters): pictures to OUT/NNNNNN-K.png, "
             "those already there skipped")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="with --prompts: paint across a Ray cluster")] = False,
    address: Annotated[str | None, typer.Option(help="with --ray: the Ray cluster (default: start one)")
                       ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="with --ray: painters (default: one per GPU, "
                                                "else per CPU)")] = None,
    home: Annotated[
        Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")
    ] = None,
    control_model: control.ControlModel = None,
    control_image: control.ControlImage = None,
    control_preprocess: control.ControlPreprocess = None,
    control_weight: control.ControlWeight = None,
    control_start: control.ControlStart = None,
    control_end: control.ControlEnd = None,
) -> None:
    """Make pictures from keywords and save them with their parameters."""
    from keypaint.outputs.saving import check_format, check_writable, output_dir
    from keypaint.provenance.settings import ProvenanceSettings

    limits = Limits(max_pixels=max_pixels)
    max_model_bytes = model_size_limit(max_model_gb)
    overrides: dict[str, Any] = {
        "steps": steps,
        "guidance_scale": cfg,
        "seed": seed,
        "batch_size": batch,
        "batch_count": count,
        "strength": strength,
        "best_of": best_of,
        "expand_keywords": expand,
        "sampler": Sampler.parse(sampler) if sampler is not None else None,
    }
    if size is not None:
        overrides["width"], overrides["height"] = parse_size(size)
    if keywords:
        overrides["prompt"] = join_keywords(keywords)
        if not overrides["prompt"]:
            raise InvalidParams("keywords", 'are empty; give some, e.g. keypaint generate "red apple"')
    if negative:
        overrides["negative_prompt"] = join_keywords(negative)
    if init is not None:
        overrides["init_image"] = read_image(init, "init image")
    if mask is not None:
        overrides["mask"] = read_image(mask, "mask")
    overrides.update(hires_overrides(hires, hires_upscaler, hires_steps, hires_strength, outpaint))
    if lora:
        overrides["loras"] = tuple(LoraRef.parse(text) for text in lora)
    if embedding:
        overrides["embeddings"] = tuple(embedding)
    if shift is not None or distilled_cfg is not None:
        from keypaint.core.flow import FlowOptions

        overrides["flow"] = FlowOptions(shift=shift, distilled_guidance=distilled_cfg)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if lcm:
        overrides = _lcm_preset(overrides)
    if prompts is not None or ray:  # many prompts, resumable, here or across a Ray cluster (cli/bulk_cmd.py)
        from functools import partial

        from keypaint.builtin import MODEL
        from keypaint.cli.bulk_cmd import generate_bulk
        from keypaint.core.painter import Painter

        bulk_speed = _speed_options(fast, deep_cache, token_merging, threads, offload, vae_tiling)
        bulk_speed.validate()  # here, not in each Ray painter after the prompts are read
        load = partial(Painter.load, model, device=device, dtype=dtype, vae=vae, allow_pickle=allow_pickle,
                       home=home, limits=limits, max_model_bytes=max_model_bytes, builtin=MODEL,
                       speed=bulk_speed)
        generate_bulk(prompts, overrides, load, out, ray=ray, address=address, workers=workers,
                      console=console)
        return
    params = _base_params(from_image, overrides)
    params = control.apply_control_options(params, control_model, control_image, control_preprocess,
                                           control_weight, control_start, control_end,
                                           model if model is not None else _from_model(from_image), home)
    check_format(format)
    check_writable(out)
    provenance = ProvenanceSettings(watermark=not no_watermark, c2pa=not no_c2pa, home=home)
    speed = _speed_options(fast, deep_cache, token_merging, threads, offload, vae_tiling, fp8_weights)

    from keypaint.builtin import MODEL
    from keypaint.core.painter import Painter

    scorer = None
    if params.best_of > 1:  # the scorer (and PyTorch) only when asked for
        from keypaint.scorer import ShippedScorer

        scorer = ShippedScorer(device)
    painter = Painter.load(
        model if model is not None else _from_model(from_image),
        device=device,
        dtype=dtype,
        vae=vae,
        allow_pickle=allow_pickle,
        home=home,
        limits=limits,
        speed=speed,
        before_loading=_quiet_loading,
        max_model_bytes=max_model_bytes,
        lazy=True,
        scorer=scorer,
        builtin=MODEL,
        components=_components(clip_l, clip_g, t5, no_t5),
    )
    # everything a user can get wrong (blocked keywords, params, LoRA and embedding files, LoRAs on a fast
    # path) is refused before the model loads
    painter.plan(params)
    from keypaint.core.sizes import size_warning

    params = painter.resolve(params)  # the size now concrete: the model's native one when none was given
    assert params.width is not None and params.height is not None
    warning = size_warning(params.width, params.height, painter.native_size)
    if warning is not None:
        stderr.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    results = _run_with_progress(painter, params)
    meanings = results[0].extra.get("Keyword meanings") if results else None
    if meanings:  # keywords that are no label found one by meaning: "cheeseburger -> hamburger"
        for match in str(meanings).split("; "):
            stderr.print(f"[dim]keyword:[/] {escape(match)}", soft_wrap=True)
    folder = output_dir(out)
    from keypaint.outputs.leftovers import remove_stale_leftovers

    remove_stale_leftovers(out)  # temporary files of saves a killed run never finished
    from keypaint.outputs.results import save_generated

    for result in results:
        path = save_generated(result, folder, format=format, provenance=provenance)  # type: ignore[arg-type]
        console.print(f"{path}  [dim]seed {result.seed}[/]", soft_wrap=True)


def _components(clip_l: Path | None, clip_g: Path | None, t5: Path | None, no_t5: bool) -> Any:
    """--clip-l, --clip-g, --t5, --no-t5: an SD3/Flux model's separate text encoders (None: none given)."""
    if clip_l is None and clip_g is None and t5 is None and not no_t5:
        return None
    from keypaint.models.flow_files import ComponentFiles

    return ComponentFiles(clip_l=clip_l, clip_g=clip_g, t5=t5, no_t5=no_t5)


def _lcm_preset(overrides: dict[str, Any]) -> dict[str, Any]:
    """--lcm: the "lcm" preset (core.presets) on what was given; another --sampler is refused."""
    try:
        return apply_preset("lcm", overrides)
    except InvalidParams as err:
        raise InvalidParams("--lcm", f"{err.reason}; drop --sampler") from None


def _quiet_loading() -> None:
    """The CLI's own progress bar is the one to watch: no loading bars from diffusers and transformers."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _speed_options(
    fast: bool, deep_cache: int, merging: float, threads: int | None, offload: str, tiling: bool,
    fp8_weights: bool = False,
) -> Any:
    from keypaint.core.speed.options import Offload, SpeedOptions

    if offload not in {o.value for o in Offload}:
        raise InvalidParams("--offload", f"unknown mode {offload!r} (none, model or sequential)")
    # --fast on a CPU starts from the built-in model's frozen bundle when an earlier --fast run left one
    speed = SpeedOptions(
        fast=fast, deep_cache=deep_cache, token_merging=merging, threads=threads, offload=Offload(offload),
        vae_tiling=tiling, frozen=fast, fp8_weights=fp8_weights,
    )
    return speed  # Painter.load checks it, before the model loads


def _base_params(from_image: Path | None, overrides: dict[str, Any]) -> GenerationParams:
    if from_image is None:
        if "prompt" not in overrides:
            raise InvalidParams("keywords", 'give some keywords, e.g. keypaint generate "red apple"')
        return GenerationParams(**overrides)
    from keypaint.outputs.metadata import params_from_metadata, read_metadata

    params = params_from_metadata(read_metadata(from_image), **overrides)
    from keypaint.outputs.control_images import load_control_images

    params = load_control_images(params, from_image.parent)  # kept beside the picture (controls/)
    if params.init_image is None and ((params_mode := _stored_mode(from_image)) != "txt2img"):
        raise InvalidParams(
            "--init", f"{from_image} was made with {params_mode}: give its --init image again"
        )
    return params


def _stored_mode(path: Path) -> str:
    from keypaint.outputs.metadata import read_metadata

    data = read_metadata(path).data or {}
    recorded = data.get("params")
    return str(recorded.get("mode", "txt2img")) if isinstance(recorded, dict) else "txt2img"


def _from_model(from_image: Path | None) -> str | None:
    """The model a stored picture was made with (by name), so --from re-makes it with the same one."""
    if from_image is None:
        return None
    from keypaint.outputs.metadata import read_metadata

    data = read_metadata(from_image).data or {}
    name = (data.get("model") or {}).get("name") if isinstance(data.get("model"), dict) else None
    return None if name in (None, "keypaint-emoji") else str(name)


def _run_with_progress(painter: Any, params: GenerationParams) -> list[Any]:
    from keypaint.core.painter import StepEvent

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("painting", total=None)

        def on_step(event: StepEvent) -> None:
            progress.update(
                task,
                total=event.steps * event.batches,
                completed=event.batch * event.steps + event.step,
                description=f"batch {event.batch + 1}/{event.batches}",
            )

        return painter.generate(params, on_step=on_step)
