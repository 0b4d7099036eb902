"""`keypaint bench cpu|gpu`: keypaint against plain diffusers, side by side in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keypaint.cli.errors import user_errors
from keypaint.errors import InvalidParams

bench_app = typer.Typer(
    no_args_is_help=True, help="Time keypaint against plain diffusers (docs/performance.md)."
)

_OUT_HELP = "also write the results to OUT.json and OUT.md"


@bench_app.command("cpu")
@user_errors
def bench_cpu_command(
    rounds: Annotated[int, typer.Option(help="alternating rounds per path")] = 3,
    threads: Annotated[int | None, typer.Option(help="CPU threads [default: PyTorch's]")] = None,
    tiny: Annotated[bool, typer.Option(help="tiny random model, 2 steps: check the code path (CI)")] = False,
    cold_runs: Annotated[int, typer.Option(help="cold-start processes per variant; 0 skips")] = 2,
    approximate: Annotated[bool, typer.Option(help="also time bf16, DeepCache and token merging")] = True,
    out: Annotated[Path | None, typer.Option(help=_OUT_HELP)] = None,
) -> None:
    """Built-in model at its defaults: diffusers vs keypaint (default, --fast, approximate), cold start."""
    from keypaint.bench.cpu import CpuBenchConfig, run_cpu_bench

    if rounds < 1:
        raise InvalidParams("--rounds", "must be at least 1")
    config = CpuBenchConfig(
        rounds=rounds, threads=threads, tiny=tiny, cold_runs=cold_runs, approximate=approximate
    )
    run_cpu_bench(config).write(out)


@bench_app.command("gpu")
@user_errors
def bench_gpu_command(
    work: Annotated[
        list[str] | None, typer.Option(help="sd15, sd15-dpm-b4, sdxl (repeatable) [default: sd15]")
    ] = None,
    rounds: Annotated[int, typer.Option(help="alternating rounds per path")] = 3,
    tiny: Annotated[
        bool, typer.Option(help="tiny models on the CPU, 2 steps: check the code path (CI)")
    ] = False,
    approximate: Annotated[bool, typer.Option(help="also time DeepCache and token merging")] = True,
    low_memory: Annotated[bool, typer.Option(help="also measure offload / VAE tiling peaks")] = True,
    cache_dir: Annotated[
        Path | None, typer.Option(help="compile artefacts [default: <home>/cache/speed]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help=_OUT_HELP)] = None,
) -> None:
    """Random SD 1.5 / SDXL weights: plain diffusers vs keypaint's fast path, memory modes, approximations."""
    from keypaint.bench.gpu import WORKS, GpuBenchConfig, run_gpu_bench

    works = tuple(work or ["sd15"])
    unknown = [w for w in works if w not in WORKS]
    if unknown:
        raise InvalidParams("--work", f"unknown workload {unknown[0]!r}; known: {', '.join(WORKS)}")
    if rounds < 1:
        raise InvalidParams("--rounds", "must be at least 1")
    config = GpuBenchConfig(
        works=works,
        rounds=rounds,
        tiny=tiny,
        approximate=approximate,
        low_memory=low_memory,
        cache_dir=cache_dir,
    )
    run_gpu_bench(config).write(out)
