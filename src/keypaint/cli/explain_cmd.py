"""`keypaint explain ...`: the forward chain, the reverse chain, attention per keyword, the latent space.

Each command checks its input (numbers, names, files) before the model loads wherever that needs no model,
writes PNG/GIF/WebP/NPZ files and prints their paths; docs/how-it-works.md shows what they make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from keypaint.cli.errors import user_errors
from keypaint.cli.inputs import parse_size, read_image
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

if TYPE_CHECKING:
    from PIL import Image

    from keypaint.core.painter import Painter

explain_app = typer.Typer(
    help="See how a picture comes out of noise: forward and reverse chains, attention, latent space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
N = TypeVar("N", int, float)

Keywords = Annotated[list[str], typer.Argument(help='keywords, e.g. "red apple" fruit')]
Negative = Annotated[list[str] | None, typer.Option("--negative", "-n", help="keywords to avoid")]
Steps = Annotated[int, typer.Option(help="denoising steps")]
SamplerName = Annotated[str, typer.Option(help="sampler name, see `keypaint samplers`")]
Cfg = Annotated[float, typer.Option("--cfg", help="guidance scale")]
Seed = Annotated[int, typer.Option(help="seed; -1 picks one at random (printed)")]
Size = Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, multiples of 8 [default: the model's]")]
Model = Annotated[
    str | None, typer.Option(help="model name (see `keypaint models`), file or folder [default: built-in]")
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")]
Dtype = Annotated[str, typer.Option(help="auto (fp16 on GPUs, fp32 on CPUs), fp32, fp16 or bf16")]
Home = Annotated[Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")]
Npz = Annotated[Path | None, typer.Option(help="also write the raw tensors to this .npz file")]
Picture = Annotated[Path | None, typer.Argument(help="a picture file; or leave out and give --prompt")]
Prompt = Annotated[str | None, typer.Option(help="generate the picture from these keywords instead")]


def _numbers(text: str, name: str, kind: Callable[[str], N]) -> list[N]:
    try:
        values = [kind(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InvalidParams(name, f"expected comma-separated numbers such as 1,2,3, got {text!r}") from None
    if not values:
        raise InvalidParams(name, "give at least one number")
    return values


def _params(keywords: list[str], negative: list[str] | None, steps: int, sampler: str, cfg: float, seed: int,
            size: str | None) -> GenerationParams:
    width, height = parse_size(size) if size else (None, None)
    params = GenerationParams.from_keywords(keywords, negative, steps=steps, sampler=Sampler.parse(sampler),
                                            guidance_scale=cfg, seed=seed, width=width, height=height)
    if not params.prompt:
        raise InvalidParams("keywords", 'give some keywords, e.g. "red apple"')
    params.validate()
    return params


def _out(path: Path, suffixes: tuple[str, ...] | None = (".png", ".webp"), what: str = "--out") -> Path:
    from keypaint.explain.figures import prepare_output

    return prepare_output(path, suffixes, what)


def _load(model: str | None, device: str, dtype: str, home: Path | None, view: str = "") -> Painter:
    from keypaint.builtin import MODEL
    from keypaint.core.painter import Painter
    from keypaint.explain.flow import check_view

    painter = Painter.load(model, device=device, dtype=dtype, home=home, builtin=MODEL)
    check_view(painter.model, view)  # SD3/Flux: how their chains differ from the DDPM chains drawn here
    return painter


def _picture(painter: Painter, image: Image.Image | None, prompt: str | None, seed: int) -> Image.Image:
    """The user's picture, or one generated from `prompt`."""
    if image is not None:
        return image
    assert prompt is not None
    result = painter.generate(GenerationParams(prompt=prompt, seed=seed))[0]
    console.print(f"generated the picture from {prompt!r} with seed {result.seed}")
    return result.image


def _source(image: Path | None, prompt: str | None) -> Image.Image | None:
    """The picture file read now (an unreadable one fails before the model loads), or None for --prompt."""
    if image is None and not prompt:
        raise InvalidParams("image", "give a picture file or --prompt keywords to generate one")
    return read_image(image, "image") if image is not None else None


def _written(paths: list[Path]) -> None:
    for path in paths:
        console.print(str(path), soft_wrap=True)


@explain_app.command("schedules")
@user_errors
def schedules_command(
    out: Annotated[Path, typer.Option(help="figure file")] = Path("schedules.png"),
    model: Annotated[str | None, typer.Option(help="also plot this model's training schedule")] = None,
    home: Home = None,
) -> None:
    """Plot beta_t, alpha_bar_t and SNR for DDPM's linear, SD's scaled-linear and the cosine schedule."""
    from keypaint.explain.schedules import plot_schedules

    _out(out)
    extra = None
    if model is not None:
        painter = _load(model, "cpu", "fp32", home, "schedules")
        extra = {f"{painter.model.name} (training)": dict(painter.model.pipe.scheduler.config)}
    _written([plot_schedules(out, extra)])


@explain_app.command("forward")
@user_errors
def forward_command(
    image: Picture = None,
    prompt: Prompt = None,
    steps: Annotated[str, typer.Option(help="steps t of the forward chain, 0 (clean) .. T")] = (
        "0,50,100,200,300,500,700,1000"),
    seed: Annotated[int, typer.Option(help="seed of the noise eps (and of the generated picture)")] = 1,
    size: Size = None,
    out: Annotated[Path, typer.Option(help="strip file (.png or .webp)")] = Path("forward.png"),
    npz: Npz = None,
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """Noise a picture along the forward chain: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    from keypaint.explain.forward import forward_chain, save_forward
    from keypaint.explain.reverse import base_scheduler_config

    timesteps = _numbers(steps, "steps", int)
    if min(timesteps) < 0:
        raise InvalidParams("steps", f"{min(timesteps)} is outside the schedule (t = 0 is the clean picture)")
    source = _source(image, prompt)
    dims = parse_size(size) if size else None
    _out(out)
    npz = _out(npz, (".npz",), "--npz") if npz else None
    painter = _load(model, device, dtype, home, "forward")
    chain = forward_chain(painter.model, _picture(painter, source, prompt, seed), timesteps, seed=seed,
                          scheduler_config=base_scheduler_config(painter), size=dims)
    _written(save_forward(chain, out, npz))


@explain_app.command("reverse", no_args_is_help=True)
@user_errors
def reverse_command(
    keywords: Keywords, negative: Negative = None, steps: Steps = 20,
    sampler: SamplerName = "DPM++ 2M Karras", cfg: Cfg = 7.0, seed: Seed = -1, size: Size = None,
    out: Annotated[Path, typer.Option(help="grid file (.png or .webp)")] = Path("reverse.png"),
    animation: Annotated[Path | None, typer.Option(help="also write an animation (.gif or .webp)")] = None,
    npz: Npz = None,
    columns: Annotated[int, typer.Option(min=2, max=50, help="steps shown in the grid")] = 8,
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """Record a generation: decoded x_t, predicted x_0 and predicted noise at every step."""
    from keypaint.explain.figures import ANIMATION_SUFFIXES
    from keypaint.explain.reverse import record_reverse, save_reverse

    params = _params(keywords, negative, steps, sampler, cfg, seed, size)
    _out(out)
    animation = _out(animation, ANIMATION_SUFFIXES, "--animation") if animation else None
    npz = _out(npz, (".npz",), "--npz") if npz else None
    painter = _load(model, device, dtype, home, "reverse")
    recording = record_reverse(painter, params)
    console.print(f"seed {recording.params.seed}, {len(recording.timesteps)} U-Net calls")
    _written(save_reverse(recording, painter.model, out, animation, npz, columns))


@explain_app.command("compare", no_args_is_help=True)
@user_errors
def compare_command(
    keywords: Keywords, negative: Negative = None,
    samplers: Annotated[str, typer.Option(help="comma-separated sampler names")] = "DDPM,DDIM,DPM++ 2M",
    steps: Annotated[str, typer.Option(help="comma-separated step counts")] = "5,10,20,50",
    cfg: Cfg = 7.0, seed: Seed = -1, size: Size = None,
    out: Annotated[Path, typer.Option(help="grid file (.png or .webp)")] = Path("samplers.png"),
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """The same seed through several samplers at several step counts, in one grid."""
    from keypaint.explain.compare import compare_samplers, save_sampler_grid

    names = [Sampler.parse(name) for name in samplers.split(",") if name.strip()]
    counts = _numbers(steps, "steps", int)
    params = _params(keywords, negative, max(counts), names[0].value if names else "DDIM", cfg, seed, size)
    for count in counts:
        replace(params, steps=count).validate()
    _out(out)
    painter = _load(model, device, dtype, home, "compare")
    resolved, rows = compare_samplers(painter, params, names, counts)
    console.print(f"seed {resolved.seed}")
    _written([save_sampler_grid(resolved, names, counts, rows, out)])


@explain_app.command("attention", no_args_is_help=True)
@user_errors
def attention_command(
    keywords: Keywords, negative: Negative = None,
    keyword: Annotated[list[str] | None, typer.Option(
        "--keyword", "-k", help="a keyword (or a word of one) to map; repeat it [default: all]")] = None,
    steps: Steps = 20, sampler: SamplerName = "DPM++ 2M Karras", cfg: Cfg = 7.0, seed: Seed = -1,
    size: Size = None,
    out: Annotated[Path, typer.Option(help="figure file (.png or .webp)")] = Path("attention.png"),
    npz: Npz = None,
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """Where each keyword went: its cross-attention over steps and layers, over the picture."""
    from keypaint.explain.attention import attention_maps, save_attention
    from keypaint.keywords.syntax import keywords as split_keywords

    params = _params(keywords, negative, steps, sampler, cfg, seed, size)
    if keyword:  # a keyword that no keyword of the prompt contains fails before the model loads
        folded = params.prompt.casefold()
        for word in keyword:
            if word.strip().casefold() not in folded:
                known = ", ".join(repr(k) for k in split_keywords(params.prompt))
                raise InvalidParams("keyword", f"{word!r} is not in the prompt; its keywords: {known}")
    _out(out)
    npz = _out(npz, (".npz",), "--npz") if npz else None
    painter = _load(model, device, dtype, home, "attention")
    result = attention_maps(painter, params, keyword or None)
    console.print(f"seed {result.params.seed}, {result.layer_calls} cross-attention layer calls")
    _written(save_attention(result, out, npz))


@explain_app.command("latent")
@user_errors
def latent_command(
    image: Picture = None,
    prompt: Prompt = None,
    seed: Annotated[int, typer.Option(help="seed of the generated picture")] = 1,
    size: Size = None,
    out: Annotated[Path, typer.Option(help="round-trip figure (.png or .webp)")] = Path("latent.png"),
    repeats: Annotated[int, typer.Option(min=1, max=20, help="timed runs per network (median)")] = 3,
    max_gflops: Annotated[float, typer.Option(help="time the pixel-space U-Net only below this")] = 2000.0,
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """VAE round trip (compression, PSNR) and the cost of a denoising step in latent vs pixel space."""
    from keypaint.explain.latent import COST_HEADER, cost_table, roundtrip, save_roundtrip, step_costs

    source = _source(image, prompt)
    dims = parse_size(size) if size else None
    if dims is not None:
        GenerationParams(prompt="", width=dims[0], height=dims[1]).validate()
    _out(out)
    painter = _load(model, device, dtype, home, "latent")
    result = roundtrip(painter.model, _picture(painter, source, prompt, seed), dims)
    console.print(f"latent {'x'.join(map(str, result.latents.shape[1:]))}: {result.compression:.0f}x fewer "
                  f"numbers than the picture; round-trip PSNR {result.psnr:.2f} dB")
    width, height = result.original.size
    table = Table(*COST_HEADER, title=f"one denoising step (batch 2 for guidance) at {width}x{height}, "
                  f"{painter.device}; VAE decode runs once a picture")
    costs = step_costs(painter.model, height, width, repeats=repeats, max_timed_gflops=max_gflops)
    for row in cost_table(costs):
        table.add_row(*row)
    console.print(table)
    _written([save_roundtrip(result, out)])


@explain_app.command("guidance", no_args_is_help=True)
@user_errors
def guidance_command(
    keywords: Keywords, negative: Negative = None,
    scales: Annotated[str, typer.Option(help="comma-separated guidance scales")] = "1,2,4,7,12",
    steps: Steps = 20, sampler: SamplerName = "DPM++ 2M Karras", seed: Seed = -1, size: Size = None,
    out: Annotated[Path, typer.Option(help="strip file (.png or .webp)")] = Path("guidance.png"),
    model: Model = None, device: Device = "auto", dtype: Dtype = "auto", home: Home = None,
) -> None:
    """The same seed at several classifier-free guidance scales, in one strip."""
    from keypaint.explain.compare import guidance_strip, save_guidance_strip

    values = _numbers(scales, "scales", float)
    params = _params(keywords, negative, steps, sampler, max(values), seed, size)
    for value in values:
        replace(params, guidance_scale=value).validate()
    _out(out)
    painter = _load(model, device, dtype, home, "guidance")
    resolved, images = guidance_strip(painter, params, values)
    console.print(f"seed {resolved.seed}")
    _written([save_guidance_strip(resolved, values, images, out)])
