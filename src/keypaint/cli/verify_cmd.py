"""`keypaint verify IMAGE...`: which of keypaint's AI marks a picture still carries.

Exit code 0 whenever the check ran, marks found or not; 2 when a file could not be read as a picture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keypaint.cli.errors import stderr

console = Console(highlight=False)
_STYLE = {"found": "green", "missing": "yellow", "tampered": "bold red", "error": "red"}


def verify_command(
    images: Annotated[list[Path], typer.Argument(help="pictures to check (PNG, JPEG, WebP)")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON report per line")] = False,
    home: Annotated[
        Path | None,
        typer.Option(help="keypaint's data folder, for the local C2PA CA (default: $KEYPAINT_HOME)"),
    ] = None,
) -> None:
    """Check pictures for keypaint's marks: XMP metadata, invisible watermark, C2PA credentials."""
    from keypaint.errors import KeypaintError
    from keypaint.provenance.settings import ProvenanceSettings
    from keypaint.provenance.verify import verify_image

    settings = ProvenanceSettings(home=home)
    unreadable = 0
    for path in images:
        try:
            report = verify_image(path, settings=settings)
        except KeypaintError as err:
            unreadable += 1
            stderr.print("[bold red]error:[/]", escape(str(err)), soft_wrap=True)
            continue
        if as_json:
            console.print(json.dumps(report.to_dict(), ensure_ascii=False), markup=False, soft_wrap=True)
            continue
        table = Table(title=escape(str(path)), title_justify="left", show_header=True)
        table.add_column("mark")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for name, mark in (("metadata", report.metadata), ("watermark", report.watermark),
                           ("c2pa", report.c2pa)):
            table.add_row(name, f"[{_STYLE[mark.status]}]{mark.status}[/]", escape(mark.detail))
        console.print(table)
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
    if unreadable:
        raise typer.Exit(code=2)
