"""Measuring side by side: alternating runs, pixel differences, PSNR, memory, and the report format.

Timings on a shared machine drift: the paths being compared run in turn (A, B, A, B ...) in one process,
and what counts is the median of each and their ratio, never one absolute number.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Row:
    """One path's figures in a bench table."""

    path: str  # e.g. "diffusers", "keypaint --fast"
    seconds: list[float] = field(default_factory=list)  # wall seconds per picture, one per round
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU seconds per picture
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # peak memory, pixel difference, warm-up ...

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    def summary(self, reference: Row | None) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "s_per_image": round(self.median, 4)}
        if self.cpu_seconds:
            out["cpu_s_per_image"] = round(statistics.median(self.cpu_seconds), 4)
        if self.steps and self.seconds:
            out["it_per_s"] = round(self.steps / self.median, 2)
        if reference is not None and reference.seconds and self.seconds:
            out["speedup"] = round(reference.median / self.median, 2)
            if self.cpu_seconds and reference.cpu_seconds:
                cpu = statistics.median(reference.cpu_seconds) / statistics.median(self.cpu_seconds)
                out["cpu_speedup"] = round(cpu, 2)
        out.update(self.extra)
        return out


def alternate(runs: dict[str, Callable[[], Any]], rows: dict[str, Row], rounds: int, per: int = 1) -> None:
    """Run every path once per round, in turn, and add its wall and CPU seconds per picture to its row."""
    for _ in range(rounds):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            rows[name].seconds.append((time.perf_counter() - wall) / per)
            rows[name].cpu_seconds.append((time.process_time() - cpu) / per)


def pixel_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Largest and mean absolute difference (0-255) and PSNR (dB) of two uint8-range pictures."""
    x, y = _as_255(a), _as_255(b)
    if x.shape != y.shape:
        raise ValueError(f"pictures of different shapes: {x.shape} vs {y.shape}")
    diff = np.abs(x - y)
    mse = float((diff**2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return {
        "max_pixel_diff": round(float(diff.max()), 2),
        "mean_pixel_diff": round(float(diff.mean()), 3),
        "psnr_db": round(psnr, 2) if math.isfinite(psnr) else "inf",
    }


def _as_255(picture: Any) -> np.ndarray:
    """A PIL image, a uint8 array or a float array in [0, 1] as float64 on the 0-255 scale."""
    array = np.asarray(picture)
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    return np.rint(np.clip(array.astype(np.float64), 0, 1) * 255)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "date": date.today().isoformat(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Report:
    """A bench's result: what ran, where, and a table per workload."""

    command: str
    machine: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, rows: list[Row]) -> None:
        reference = rows[0] if rows else None
        self.tables[name] = [row.summary(reference) for row in rows]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def to_markdown(self) -> str:
        lines = [f"`{self.command}`", "", " | ".join(f"{k}: {v}" for k, v in self.machine.items()), ""]
        for name, rows in self.tables.items():
            keys: list[str] = []
            for row in rows:
                keys += [k for k in row if k not in keys]
            lines += [f"### {name}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
            lines.append("")
        for key, value in self.notes.items():
            lines.append(f"- {key}: {value}")
        return "\n".join(lines) + "\n"

    def write(self, out: Path | None) -> None:
        """Print the markdown; with `out`, also write out.json and out.md."""
        print(self.to_markdown(), flush=True)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(self.to_json(), encoding="utf-8")
            out.with_suffix(".md").write_text(self.to_markdown(), encoding="utf-8")
