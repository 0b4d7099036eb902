"""The benches' code paths at tiny size: every row is filled and the fast path gives the same picture."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keypaint.bench.cpu import CpuBenchConfig, run_cpu_bench
from keypaint.bench.gpu import GpuBenchConfig, run_gpu_bench
from keypaint.bench.measure import pixel_difference
from keypaint.cli.bench_cmd import bench_app


def test_cpu_bench_fills_every_row_and_the_fast_path_is_exact() -> None:
    report = run_cpu_bench(CpuBenchConfig(rounds=1, tiny=True, cold_runs=0))
    [(title, rows)] = report.tables.items()
    assert "2 steps" in title
    paths = [row["path"] for row in rows]
    assert paths == [
        "diffusers",
        "keypaint",
        "keypaint --fast",
        "keypaint --dtype bf16",
        "keypaint --deep-cache 2",
        "keypaint --token-merging 0.5",
    ]
    assert all(row["s_per_image"] > 0 and "speedup" in row for row in rows)
    assert rows[0]["max_pixel_diff"] <= report.notes["exact_tolerance_px"]  # diffusers paints the same
    fast = rows[2]
    assert report.notes["fast_is_exact"] is True
    assert fast["max_pixel_diff"] <= report.notes["exact_tolerance_px"]
    assert fast["graphs"] == "exported"


def test_gpu_bench_runs_every_workload_on_a_cpu_at_tiny_size(tmp_path: Path) -> None:
    config = GpuBenchConfig(works=("sd15", "sd15-dpm-b4", "sdxl"), rounds=1, tiny=True, cache_dir=tmp_path)
    report = run_gpu_bench(config)
    assert not [k for k in report.notes if k.endswith("error")], report.notes
    assert len(report.tables) == 3
    for rows in report.tables.values():
        plain, fast, cached, merged = rows
        assert fast["max_pixel_diff"] <= report.notes["exact_tolerance_px"]
        assert fast["speedup"] > 0 and plain["it_per_s"] > 0
        assert "approximate" in cached["path"] and cached["psnr_db"] != "inf"
        assert merged["path"] == "diffusers + --token-merging 0.5 (approximate)"
        assert merged["psnr_db"] != "inf"  # the tiny U-Nets' first attention level is merged too
        assert cached["vs_plain_same_rounds"] > 0 and merged["vs_plain_same_rounds"] > 0
    assert all(report.notes[f"{w} fast_is_exact"] for w in config.works)


def test_bench_gpu_command_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    result = CliRunner().invoke(
        bench_app, ["gpu", "--tiny", "--work", "sd15", "--rounds", "1", "--no-approximate", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.with_suffix(".json").read_text())
    [rows] = data["tables"].values()
    assert [r["path"] for r in rows] == ["diffusers (fp16, SDPA)", "keypaint --fast"]
    assert "| keypaint --fast |" in out.with_suffix(".md").read_text()


def test_bench_gpu_command_refuses_unknown_workloads() -> None:
    result = CliRunner().invoke(bench_app, ["gpu", "--tiny", "--work", "sd3"])
    assert result.exit_code == 2
    assert "unknown workload 'sd3'" in result.output


def test_pixel_difference_reads_pil_range_and_float_range_alike() -> None:
    import numpy as np

    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 0.5)  # float pictures are in [0, 1]
    diff = pixel_difference(a, b)
    assert diff["max_pixel_diff"] == 128 and diff["psnr_db"] < 10
    assert pixel_difference(a, a)["psnr_db"] == "inf"
