"""`keypaint bench gpu`: plain diffusers against keypaint's fast path on random SD 1.5 / SDXL weights.

Per workload, in one process: the plain pipeline (fp16, PyTorch SDPA attention, as diffusers ships it) and
keypaint's exact fast path (`core.speed`: channels_last, fused QKV, torch.compile + CUDA graphs) over
copies of the same weights, alternating; s/image, it/s (denoising steps per second of the whole call),
peak GPU memory, first-call (compile) time with the artefact cache cold or warm, and the largest pixel
difference. Then the opt-in DeepCache and token merging with their PSNR, and the low-memory modes with
their measured peaks.
`--tiny` runs the same code on a CPU with tiny models and a tracing-only compiler (CI).
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypaint.bench.measure import Report, Row, alternate, machine, pixel_difference
from keypaint.core.speed import EXACT_TOLERANCE, Offload, SpeedOptions, accelerate

PROMPT = "a photo of an astronaut riding a horse on mars"
# opt-in approximate speed-ups, each timed on the plain modules with its PSNR against the plain picture
APPROXIMATE = (
    ("--deep-cache 3", SpeedOptions(deep_cache=3)),
    ("--token-merging 0.5", SpeedOptions(token_merging=0.5)),
)


@dataclass(frozen=True)
class Work:
    """One workload of the issue's list."""

    name: str
    config: str  # random_models.CONFIGS key
    size: int
    steps: int
    batch: int = 1
    sampler: str | None = None  # None: the config's own scheduler
    low_memory: tuple[tuple[Offload, bool], ...] = ((Offload.MODEL, False),)  # (offload, VAE tiling)


WORKS = {
    "sd15": Work("sd15", "sd15", 512, 50),
    "sd15-dpm-b4": Work("sd15-dpm-b4", "sd15", 512, 20, batch=4, sampler="DPM++ 2M", low_memory=()),
    "sdxl": Work("sdxl", "sdxl", 1024, 50, low_memory=((Offload.MODEL, True),)),
    # beyond the list: SD 1.5 at twice its size, where self-attention's 16,384 tokens dominate
    "sd15-1024": Work("sd15-1024", "sd15", 1024, 20, low_memory=((Offload.MODEL, True),)),
}


@dataclass(frozen=True)
class GpuBenchConfig:
    works: tuple[str, ...] = ("sd15",)
    rounds: int = 3
    tiny: bool = False  # CPU, tiny models, 2 steps, compile traced only
    approximate: bool = True  # DeepCache and token merging rows
    low_memory: bool = True  # offload / tiling rows
    cache_dir: Path | None = None
    extra_notes: dict[str, Any] = field(default_factory=dict)


def run_gpu_bench(config: GpuBenchConfig) -> Report:
    device = torch.device("cpu" if config.tiny else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "no CUDA GPU here: run `keypaint bench gpu --tiny` to check the code path on a CPU"
        )
    flags = "".join(f" --work {w}" for w in config.works) + (" --tiny" if config.tiny else "")
    report = Report(command=f"keypaint bench gpu{flags} --rounds {config.rounds}", machine=machine())
    report.notes.update(config.extra_notes)
    report.notes["exact_tolerance_px"] = EXACT_TOLERANCE["cuda"]
    for name in config.works:
        work = WORKS[name]
        if config.tiny:
            work = Work(work.name, work.config, 64, 2, work.batch, work.sampler, work.low_memory)
        try:
            rows, notes = _bench_work(work, config, device)
            report.add(f"{name}: {work.size}x{work.size}, {work.steps} steps, batch {work.batch}", rows)
            report.notes.update({f"{name} {k}": v for k, v in notes.items()})
        except Exception as exc:  # one failing workload must not lose the others' figures
            report.notes[f"{name} error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def _pipeline(work: Work, tiny: bool, device: torch.device) -> Any:
    from keypaint.bench.random_models import CONFIGS, random_pipeline, tiny_random_pipeline

    dtype = torch.float32 if tiny else torch.float16
    build = tiny_random_pipeline if tiny else random_pipeline
    pipe = build(CONFIGS[work.config], device, dtype)
    if work.sampler is not None:
        from keypaint.core.samplers import Sampler, make_scheduler

        pipe.scheduler = make_scheduler(Sampler.parse(work.sampler), dict(pipe.scheduler.config), [0])
    return pipe


def _copy_with(pipe: Any, **parts: torch.nn.Module) -> Any:
    from keypaint.models.assemble import assemble_pipeline
    from keypaint.models.loaded import ModelKind

    kind = ModelKind.SDXL if hasattr(pipe, "text_encoder_2") else ModelKind.SD1
    out = assemble_pipeline(kind, {**pipe.components, **parts}, name="bench")
    out.set_progress_bar_config(disable=True)
    return out


def _caller(work: Work, device: torch.device) -> Callable[[Any], np.ndarray]:
    def call(pipe: Any) -> np.ndarray:
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(work.batch)]
        images = pipe(
            prompt=PROMPT,
            num_inference_steps=work.steps,
            guidance_scale=7.5,
            height=work.size,
            width=work.size,
            num_images_per_prompt=work.batch,
            generator=generators,
            output_type="np",
        ).images
        _sync(device)
        return np.asarray(images)

    return call


def _bench_work(work: Work, config: GpuBenchConfig, device: torch.device) -> tuple[list[Row], dict[str, Any]]:
    call = _caller(work, device)
    plain = _pipeline(work, config.tiny, device)
    out, notes, picture_plain = _bench_exact(work, config, device, plain, call)
    gc.collect()  # the fast path's copies are gone: what follows measures the plain modules alone
    if config.approximate:
        for flag, options in APPROXIMATE:
            out.append(_approximate_row(work, plain, call, picture_plain, config.rounds, flag, options))
    if config.low_memory and device.type == "cuda":
        out += [_low_memory_row(work, plain, call, picture_plain, *mode) for mode in work.low_memory]
    return out, notes


def _bench_exact(
    work: Work, config: GpuBenchConfig, device: torch.device, plain: Any, call: Callable[[Any], np.ndarray]
) -> tuple[list[Row], dict[str, Any], np.ndarray]:
    """Plain against fast, alternating; the fast path's copies are dropped when this returns."""
    notes: dict[str, Any] = {}
    rows = {
        "diffusers": Row("diffusers (fp16, SDPA)", steps=work.steps),
        "fast": Row("keypaint --fast", steps=work.steps),
    }
    # 1. plain: first call, then its peak memory with nothing else on the GPU
    started = time.perf_counter()
    call(plain)
    rows["diffusers"].extra["first_call_s"] = round(time.perf_counter() - started, 2)
    picture_plain, peak = _peak(device, lambda: call(plain))
    rows["diffusers"].extra["peak_gpu_gb"] = peak
    # 2. fast: copies of the U-Net and VAE (the path rewrites them in place), compiled on the first calls
    fast_base = _copy_with(plain, unet=copy.deepcopy(plain.unet), vae=copy.deepcopy(plain.vae))
    speed = SpeedOptions(
        fast=True, cache_dir=config.cache_dir, compiler="eager" if config.tiny else "inductor"
    )
    started = time.perf_counter()
    fast = accelerate(fast_base, speed)
    first = call(fast.pipe)
    fast.after_run((work.batch, work.size, work.size))  # save the compile artefacts for the next process
    rows["fast"].extra["first_call_s"] = round(time.perf_counter() - started, 2)
    rows["fast"].extra["compile_cache"] = "warm" if fast.notes.get("cache_hit") else "cold"
    started = time.perf_counter()
    call(fast.pipe)  # CUDA graphs are recorded on the first calls after compiling
    rows["fast"].extra["second_call_s"] = round(time.perf_counter() - started, 2)
    plain_bytes = _bytes(plain.unet) + _bytes(plain.vae)
    picture_fast, peak = _peak(device, lambda: call(fast.pipe), minus=plain_bytes)
    rows["fast"].extra["peak_gpu_gb"] = peak
    rows["fast"].extra.update(pixel_difference(picture_fast, picture_plain))
    notes["fast_is_exact"] = rows["fast"].extra["max_pixel_diff"] <= EXACT_TOLERANCE["cuda"]
    notes["first_call_vs_later_max_pixel_diff"] = pixel_difference(first, picture_fast)["max_pixel_diff"]
    notes["nan_in_pictures"] = bool(np.isnan(picture_plain).any() or np.isnan(picture_fast).any())
    # 3. alternate
    alternate(
        {"diffusers": lambda: call(plain), "fast": lambda: call(fast.pipe)},
        rows,
        config.rounds,
        per=work.batch,
    )
    return list(rows.values()), notes, picture_plain


def _approximate_row(
    work: Work,
    plain: Any,
    call: Callable[[Any], np.ndarray],
    reference: np.ndarray,
    rounds: int,
    flag: str,
    options: SpeedOptions,
) -> Row:
    """An approximate speed-up on the plain modules, with its PSNR against the plain picture.

    Each round also times the plain modules without it (`vs_plain_same_rounds`): the approximation's own
    speed-up, free of whatever the GPU's host did while the exact rows ran.
    """
    row = Row(f"diffusers + {flag} (approximate)", steps=work.steps)
    plain_row = Row("plain", steps=work.steps)
    sped = accelerate(plain, options)
    try:
        sped.before_run()
        picture = call(sped.pipe)

        def run_sped() -> None:
            sped.before_run()
            call(sped.pipe)

        sped_rows = {"sped": row, "plain": plain_row}
        alternate({"sped": run_sped, "plain": lambda: call(plain)}, sped_rows, rounds, per=work.batch)
        row.cpu_seconds.clear()  # the plain row's CPU seconds are reported for the exact paths only
        row.extra["vs_plain_same_rounds"] = round(plain_row.median / row.median, 2)
        row.extra.update(pixel_difference(picture, reference))
    finally:
        sped.remove_approximations()
    return row


def _low_memory_row(
    work: Work,
    plain: Any,
    call: Callable[[Any], np.ndarray],
    reference: np.ndarray,
    offload: Offload,
    tiling: bool,
) -> Row:
    """diffusers' offloading (weights wait in CPU memory) and VAE tiling: one run, its own GPU peak."""
    label = f"--offload {offload.value}" + (" --vae-tiling" if tiling else "")
    row = Row(f"diffusers {label}", steps=work.steps)
    pipe = _copy_with(plain)
    accelerate(pipe, SpeedOptions(offload=offload, vae_tiling=tiling))  # moves the weights to CPU memory
    gc.collect()
    torch.cuda.empty_cache()
    started = time.perf_counter()
    picture, peak = _peak(torch.device("cuda"), lambda: call(pipe), minus=None)
    row.seconds.append((time.perf_counter() - started) / work.batch)
    row.extra["peak_gpu_gb"] = peak
    row.extra.update(pixel_difference(picture, reference))
    pipe.remove_all_hooks()
    if tiling:
        pipe.vae.disable_tiling()
    return row


def _peak(
    device: torch.device, run: Callable[[], np.ndarray], minus: int | None = 0
) -> tuple[np.ndarray, Any]:
    """Run once; the GPU memory (GB) the path needed at its peak.

    Counted: what the run allocated beyond what was held before it, plus what was held less `minus` bytes
    (another path's weights); `minus` None counts nothing held before (offloaded weights arrive during it).
    """
    if device.type != "cuda":
        return run(), "n/a (cpu)"
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    picture = run()
    held = 0 if minus is None else max(before - minus, 0)
    return picture, round((torch.cuda.max_memory_allocated() - before + held) / 1e9, 3)


def _bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
