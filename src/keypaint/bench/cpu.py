"""`keypaint bench cpu`: the built-in model at its defaults, keypaint's paths against plain diffusers.

In one process, in turn: a plain diffusers `StableDiffusionPipeline` over the same weights (what someone
would write with diffusers alone), keypaint's default path, its exact fast path (ONNX Runtime) and the
opt-in approximate ones (bf16, DeepCache, token merging), each with its pixel difference to keypaint's
exact picture.
Then cold start: `keypaint generate` launched as a new process, timed to the saved file and to its exit.
The frozen bundle row is a Painter started from what the fast run left (ONNX Runtime and numpy, no
diffusers pipeline). `--fast` is launched once first, unmeasured: that run exports what later `--fast`
processes reuse (the ONNX graphs and the frozen bundle, with which a process never imports PyTorch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypaint.bench.measure import Report, Row, alternate, peak_rss_mb, pixel_difference
from keypaint.core.params import GenerationParams
from keypaint.core.speed import EXACT_TOLERANCE, SpeedOptions

PROMPT = "red apple"
FROZEN = "keypaint --fast (frozen bundle)"


@dataclass(frozen=True)
class CpuBenchConfig:
    rounds: int = 3  # alternating rounds per path
    threads: int | None = None  # torch / ORT threads; None: PyTorch's default
    tiny: bool = False  # tiny random model, 2 steps: checks the code path in seconds (CI)
    cold_runs: int = 2  # `keypaint generate` processes per cold-start variant; 0 skips cold start
    approximate: bool = True  # also time bf16, DeepCache and token merging
    cache_dir: Path | None = None  # fast-path artefacts; None: <KEYPAINT_HOME>/cache/speed


def _models(tiny: bool, dtype: torch.dtype = torch.float32) -> Any:
    if tiny:
        from keypaint.models.loaded import ModelKind
        from keypaint.models.tiny import tiny_model

        model = tiny_model(ModelKind.SD1)
        model.pipe.to(dtype=dtype)
        return model
    from keypaint.builtin import MODEL
    from keypaint.models.loader import load_model

    return load_model(None, dtype=dtype, builtin=MODEL)


def plain_diffusers(tiny: bool) -> Callable[[GenerationParams], np.ndarray]:
    """What one writes with diffusers alone: the same weights, DPM++ 2M Karras, default settings.

    It is given the prompt as keypaint's text encoder sees it (with keyword expansion), so the pictures
    can be compared pixel by pixel.
    """
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    model = _models(tiny)
    parts = model.pipe.components
    scheduler = DPMSolverMultistepScheduler.from_config(
        parts["scheduler"].config, algorithm_type="dpmsolver++", use_karras_sigmas=True
    )
    keep = ("vae", "text_encoder", "tokenizer", "unet")
    pipe = StableDiffusionPipeline(
        **{k: parts[k] for k in keep},
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    def run(params: GenerationParams) -> np.ndarray:
        generator = torch.Generator("cpu").manual_seed(params.seed)
        out = pipe(
            prompt=model.expand(params.prompt).prompt if params.expand_keywords else params.prompt,
            negative_prompt=params.negative_prompt or None,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance_scale,
            height=params.height,
            width=params.width,
            generator=generator,
            output_type="np",
        )
        return out.images[0]

    return run


def _painter_run(speed: SpeedOptions, tiny: bool, dtype: torch.dtype = torch.float32) -> Any:
    from keypaint.builtin import MODEL
    from keypaint.core.painter import Painter

    painter = Painter(_models(tiny, dtype), speed=speed, builtin=MODEL)  # fast runs feed the bundle

    def run(params: GenerationParams) -> np.ndarray:
        return np.asarray(painter.generate(params)[0].image)

    return run, painter


def _frozen_run(speed: SpeedOptions) -> Callable[[GenerationParams], np.ndarray] | None:
    """A Painter started from the frozen bundle (no model loaded); None if there is no bundle."""
    from keypaint.builtin import MODEL
    from keypaint.core.painter import Painter

    painter = Painter.load(device="cpu", speed=speed, builtin=MODEL)
    if painter.frozen is None:
        return None

    def run(params: GenerationParams) -> np.ndarray:
        picture = np.asarray(painter.generate(params)[0].image)
        if painter.loaded:
            raise RuntimeError("the frozen bundle did not cover the bench's request")
        return picture

    return run


def run_cpu_bench(config: CpuBenchConfig) -> Report:
    """Time every path at the built-in model's defaults (tiny: 2 steps at 64 px) and cold start."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    size = 64 if config.tiny else 128
    params = GenerationParams(prompt=PROMPT, seed=1, width=size, height=size, steps=2 if config.tiny else 20)
    command = (
        "keypaint bench cpu"
        + (" --tiny" if config.tiny else "")
        + (f" --threads {config.threads}" if config.threads else "")
    )
    report = Report(command=command, machine=_machine())
    # frozen: the fast run also writes the built-in model's frozen bundle, timed below on its own
    fast_speed = SpeedOptions(fast=True, threads=config.threads, cache_dir=config.cache_dir, frozen=True)

    paths: dict[str, Callable[[GenerationParams], np.ndarray]] = {"diffusers": plain_diffusers(config.tiny)}
    paths["keypaint"], _ = _painter_run(SpeedOptions(threads=config.threads), config.tiny)
    warm = time.perf_counter()
    paths["keypaint --fast"], fast_painter = _painter_run(fast_speed, config.tiny)
    first = paths["keypaint --fast"](params)  # exports (or loads) the ONNX graphs
    warm_up = round(time.perf_counter() - warm, 2)
    exported = bool(fast_painter.speed.pipe.unet.graphs.exported)
    frozen = _frozen_run(fast_speed) if not config.tiny else None
    if frozen is not None:
        paths[FROZEN] = frozen
    if config.approximate:
        paths["keypaint --dtype bf16"], _ = _painter_run(SpeedOptions(), config.tiny, torch.bfloat16)
        paths["keypaint --deep-cache 2"], _ = _painter_run(SpeedOptions(deep_cache=2), config.tiny)
        paths["keypaint --token-merging 0.5"], _ = _painter_run(SpeedOptions(token_merging=0.5), config.tiny)

    pictures = {name: run(params) for name, run in paths.items()}  # also warms every path up
    rows = {name: Row(name, steps=params.steps) for name in paths}
    alternate({name: (lambda r=run: r(params)) for name, run in paths.items()}, rows, config.rounds)

    exact = pictures["keypaint"]
    for name, row in rows.items():
        if name != "keypaint":
            row.extra.update(pixel_difference(pictures[name], exact))
    rows["keypaint --fast"].extra["warm_up_s"] = warm_up
    rows["keypaint --fast"].extra["graphs"] = "exported" if exported else "loaded from cache"
    same = pixel_difference(first, exact)["max_pixel_diff"] <= EXACT_TOLERANCE["cpu"]
    report.add(
        f"{size} px, {params.steps} steps, {params.sampler.value}, CFG {params.guidance_scale}",
        list(rows.values()),
    )
    report.notes.update(
        {
            "exact_tolerance_px": EXACT_TOLERANCE["cpu"],
            "fast_is_exact": same,
            "peak_rss_mb_bench_process": peak_rss_mb(),
            "pixel differences": "against keypaint's default (exact) picture",
        }
    )
    if config.cold_runs > 0 and not config.tiny:
        report.tables["cold start: process start to picture saved"] = cold_start(config)
    return report


def _machine() -> dict[str, Any]:
    from keypaint.bench.measure import machine

    info = machine()
    info["bf16_hardware"] = _cpu_flags() & {"avx512_bf16", "amx_bf16"}
    return info


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cold_start(config: CpuBenchConfig) -> list[dict[str, Any]]:
    """`keypaint generate "red apple"` as new processes: seconds to the saved file and to exit, peak RSS."""
    variants = {"keypaint generate": [], "keypaint generate --fast": ["--fast"]}
    rows: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    threads = ["--threads", str(config.threads)] if config.threads else []
    _launch(["--fast", *threads])  # what a first --fast run leaves: graphs and the frozen bundle
    for _ in range(config.cold_runs):
        for name, flags in variants.items():
            samples[name].append(_launch([*flags, *threads]))
    for name, runs in samples.items():
        rows.append(
            {
                "command": f'{name} "{PROMPT}" --seed 1',
                **{key: round(float(np.median([r[key] for r in runs])), 2) for key in runs[0]},
            }
        )
    return rows


def _launch(flags: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="keypaint-cold-") as tmp:
        command = [sys.executable, "-m", "keypaint", "generate", PROMPT, "--seed", "1", "--out", tmp, *flags]
        start = time.time()
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        # The child's own peak RSS: wait4's ru_maxrss would include this (large) parent's, copied at fork.
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))
            time.sleep(0.02)
        end = time.time()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
        saved = max((p.stat().st_mtime for p in Path(tmp).rglob("*.png")), default=end)
        return {"to_saved_s": saved - start, "to_exit_s": end - start, "peak_rss_mb": peak_kb / 1024}


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


__all__ = ["CpuBenchConfig", "plain_diffusers", "run_cpu_bench"]
