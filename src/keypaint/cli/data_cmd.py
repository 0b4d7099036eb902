"""`keypaint data ...`: build training data sets from the command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from keypaint.errors import KeypaintError

data_app = typer.Typer(
    help="Build training data: `keypaint data emoji OUT` renders ten open emoji sets into a captioned "
    "image folder for the built-in model; `keypaint data icons OUT` adds open icon sets of other styles.",
    no_args_is_help=True,
)


@data_app.callback()
def data() -> None:
    """Build training data sets (a group even with one command, so `keypaint data emoji` stays stable)."""


STAGES = {"fetch": "Tarballs", "match": "Matching icons", "plan": "Captioning sets", "render": "Rendering"}
T = TypeVar("T")


def run_with_progress(build: Callable[[Callable[[str, int, int], None]], T]) -> T:
    """Run a build with a progress bar per stage on stderr; a KeypaintError is one line and exit 2."""
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            tasks: dict[str, TaskID] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(STAGES.get(stage, stage), total=total)
                progress.update(tasks[stage], completed=done, total=total)

            return build(on_progress)
    except KeypaintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def print_table(table: Table) -> None:
    stdout = Console()
    (stdout if stdout.is_terminal else Console(width=140)).print(table)  # pipes get 80 columns otherwise


def warn_failed(failed: int, out: Path) -> None:
    if failed:
        where = out / "sources.json"
        Console(stderr=True).print(f"[yellow]{failed} icons failed to render; listed in {where}[/yellow]")


def split_sets(sets: str | None) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in sets.split(",") if s.strip()) if sets is not None else None


@data_app.command("emoji")
def emoji(
    out: Annotated[Path, typer.Argument(help="Output folder (train/, heldout/, sources.json, LICENSES.md).")],
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 128,
    workers: Annotated[int | None, typer.Option(help="Render processes (default: one per CPU core).")] = None,
    heldout: Annotated[float, typer.Option(help="Share of (emoji, style) pairs held out of train.")] = 0.05,
    sets: Annotated[
        str | None,
        typer.Option(help="Comma-separated styles to build, e.g. 'noto,twemoji' (default: all ten)."),
    ] = None,
    npm_cache: Annotated[
        Path | None, typer.Option(help="Tarball folder; missing ones are fetched into it with `npm pack`.")
    ] = None,
    from_tarballs: Annotated[
        Path | None, typer.Option(help="Offline: read all tarballs from this folder, never run npm.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N icons of each set (trials).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in OUT.")] = False,
) -> None:
    """Render the emoji sets to OUT as an imagefolder with keyword captions and licence records."""
    from keypaint.data.emoji import EmojiDataConfig, build_emoji_dataset

    config = EmojiDataConfig(
        out=out,
        size=size,
        workers=workers,
        heldout_fraction=heldout,
        styles=split_sets(sets),
        npm_cache=npm_cache,
        from_tarballs=from_tarballs,
        limit=limit,
        overwrite=overwrite,
    )
    start = time.perf_counter()
    report = run_with_progress(lambda on_progress: build_emoji_dataset(config, on_progress))

    table = Table(title=f"{out}  ({time.perf_counter() - start:.0f} s)")
    for column in (
        "style",
        "version",
        "licence",
        "icons",
        "matched",
        "skipped",
        "unmatched",
        "train",
        "heldout",
    ):
        text = column in ("style", "version", "licence")
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for s in report.sets:
        table.add_row(
            s.style,
            s.version,
            s.license.get("spdx", "?"),
            str(s.icons),
            f"{s.match_rate:.1%}",
            str(sum(s.skipped.values())),
            str(s.unmatched),
            str(s.train),
            str(s.heldout),
        )
    print_table(table)
    warn_failed(sum(len(s.render_failed) for s in report.sets), out)


@data_app.command("icons")
def icons(
    out: Annotated[Path, typer.Argument(help="New or empty output folder (train/, heldout/, sources.json, "
                                             "LICENSES.md).")],
    size: Annotated[int, typer.Option(help="Image side in pixels, emoji and icons alike.")] = 128,
    workers: Annotated[int | None, typer.Option(help="Render processes (default: one per CPU core).")] = None,
    heldout: Annotated[float, typer.Option(help="Share of (label, style) pairs held out of train.")] = 0.05,
    sets: Annotated[
        str | None,
        typer.Option(help="Comma-separated emoji styles and icon sets, e.g. 'noto,tabler' (default: all)."),
    ] = None,
    npm_cache: Annotated[
        Path | None, typer.Option(help="Tarball folder; missing ones are fetched into it with `npm pack`.")
    ] = None,
    from_tarballs: Annotated[
        Path | None, typer.Option(help="Offline: read all tarballs from this folder, never run npm.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N kept icons of each set.")] = None,
    emoji_share: Annotated[float, typer.Option(help="Share of sampling weight that goes to emoji.")] = 0.6,
) -> None:
    """Render emoji and open icon sets to OUT: captions from names, style keywords, weights, licences."""
    from keypaint.data.icons import IconDataConfig, build_icons_dataset

    config = IconDataConfig(
        out=out, size=size, workers=workers, heldout_fraction=heldout, sets=split_sets(sets),
        npm_cache=npm_cache, from_tarballs=from_tarballs, limit=limit, emoji_share=emoji_share,
    )
    start = time.perf_counter()
    report = run_with_progress(lambda on_progress: build_icons_dataset(config, on_progress))

    table = Table(title=f"{out}  ({time.perf_counter() - start:.0f} s)")
    for column in ("kind", "set", "version", "licence", "icons", "kept", "styles", "train", "heldout"):
        text = column in ("kind", "set", "version", "licence")
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for e in report.emoji:
        table.add_row("emoji", e.style, e.version, e.license.get("spdx", "?"), str(e.icons),
                      str(e.train + e.heldout), "1", str(e.train), str(e.heldout))
    for i in report.icons:
        table.add_row("icon", i.prefix, i.version, i.license.get("spdx", "?"), str(i.icons), str(i.kept),
                      str(len(i.styles)), str(i.train), str(i.heldout))
    print_table(table)
    warn_failed(sum(len(s.render_failed) for s in [*report.emoji, *report.icons]), out)
