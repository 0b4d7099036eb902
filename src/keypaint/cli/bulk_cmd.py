"""`keypaint generate --prompts FILE [--ray]`: many prompts, each line's pictures under fixed names, with a
progress bar; pictures already written are skipped, so a stopped run resumes (keypaint.cluster.bulk)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keypaint.cluster.bulk import Row, paint_here, read_prompts
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams


def generate_bulk(prompts: Path | None, overrides: dict[str, Any], load: Callable[[], Any], out: Path, *,
                  ray: bool, address: str | None, workers: int | None, console: Console) -> None:
    """Paint every line of `prompts` missing from `out`, here or on Ray; the command line's `overrides`
    are every line's defaults."""
    if prompts is None:
        raise InvalidParams("--ray", "goes with --prompts FILE")
    if "prompt" in overrides:
        raise InvalidParams("keywords", "give keywords or --prompts FILE, not both")
    pictures = {"init_image", "mask", "best_of"} & set(overrides)
    if pictures:
        raise InvalidParams(sorted(pictures)[0], "is not offered with --prompts")
    rows = read_prompts(prompts, GenerationParams(prompt="", **overrides))
    out.mkdir(parents=True, exist_ok=True)
    todo = [row for row in rows if row.missing(out)]
    console.print(f"{len(rows)} prompts, {len(rows) - len(todo)} already painted in {out}")
    columns = (TextColumn("painting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("prompts", total=len(rows), completed=len(rows) - len(todo))

        def advance(_row: Row) -> None:
            bar.advance(task)

        if not todo:
            return
        if ray:
            from keypaint.cluster.bulk_ray import paint_on_ray

            paint_on_ray(load, todo, out, advance, address=address, workers=workers)
        else:
            paint_here(load(), todo, out, advance)
