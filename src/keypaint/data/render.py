"""Render SVG icons to RGB PNGs on white with resvg, in a process pool.

resvg takes ~5 ms per 128 px icon, so a pool of one process per core keeps a full build to minutes.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from PIL import Image

from keypaint.data.errors import DataError

RenderJob = tuple[str, str, int]  # (svg document, output png path, size in px)


def _resvg() -> ModuleType:
    try:
        import resvg_py
    except ImportError as exc:
        raise DataError("resvg-py is not installed; `pip install resvg-py` to render icons") from exc
    return resvg_py


def render_svg(svg: str, size: int) -> Image.Image:
    """An RGB image of `size` x `size`: transparent parts become white, never black."""
    png = _resvg().svg_to_bytes(
        svg_string=svg, width=size, height=size, background="#ffffff", skip_system_fonts=True
    )
    with Image.open(io.BytesIO(bytes(png))) as image:
        rgba = image.convert("RGBA")
    if rgba.size != (size, size):
        rgba = rgba.resize((size, size), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def render_job(job: RenderJob) -> tuple[str, str | None]:
    """Worker entry point: render one job; returns (path, error message or None)."""
    svg, path, size = job
    try:
        render_svg(svg, size).save(path, format="PNG")
    except (ValueError, OSError) as exc:
        return path, f"{type(exc).__name__}: {exc}"
    return path, None


def render_all(
    jobs: list[RenderJob], workers: int | None = None, on_done: Callable[[int], None] | None = None
) -> dict[str, str]:
    """Render every job; returns {path: error} for the icons resvg could not draw."""
    _resvg()  # fail before starting processes if the renderer is missing
    workers = max(1, workers or os.cpu_count() or 1)
    failed: dict[str, str] = {}
    results: Iterator[tuple[str, str | None]]
    if workers == 1 or len(jobs) < 64:
        results = map(render_job, jobs)
        pool = None
    else:
        # spawn, not fork: the caller may run threads (rich's progress refresher).
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(render_job, jobs, chunksize=32)
    try:
        for done, (path, error) in enumerate(results, start=1):
            if error is not None:
                failed[path] = error
            if on_done is not None:
                on_done(done)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for path in failed:
        Path(path).unlink(missing_ok=True)
    return failed
