"""`keypaint ...`: generate, info, models, samplers (and the data, train, export, eval groups)."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keypaint.cli.errors import OneLineErrors, user_errors
from keypaint.cli.generate import generate_command

app = typer.Typer(
    name="keypaint",
    help="Keywords in, picture out: Stable Diffusion with a built-in model that works offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,  # a usage error (`--steps abc`) is one line, as every other bad input
    # help as plain text: rich markup would eat "[shadow]" and "[default: 20]", and show "<bool>" on flags
    rich_markup_mode=None,
)
console = Console(highlight=False)

app.command("generate", no_args_is_help=True)(generate_command)


@app.command("samplers")
def samplers_command() -> None:
    """List the samplers by the names A1111 users know, and the diffusers scheduler behind each."""
    from keypaint.core.samplers import SPECS

    table = Table("sampler", "diffusers scheduler", "what it is")
    for sampler, spec in SPECS.items():
        table.add_row(sampler.value, spec.scheduler, spec.description)
    console.print(table)


@app.command("models")
@user_errors
def models_command(
    home: Annotated[
        Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")
    ] = None,
) -> None:
    """List the built-in model and the models in the model folder (<home>/models)."""
    from keypaint.models.registry import keypaint_home, list_models

    table = Table("name", "format", "kind", "size")
    table.add_column("path", overflow="fold")  # whole, on more lines if need be: it is to be copied
    for entry in list_models(home):
        path, size = entry.path, entry.size
        if entry.format == "builtin":
            from keypaint.builtin import WEIGHTS_DIR, weight_files

            path, size = WEIGHTS_DIR, sum(f.stat().st_size for f in weight_files())
        shown = f"{size / 1e6:,.0f} MB" if size else ""
        table.add_row(entry.name, entry.format, entry.kind or "?", shown, str(path or ""))
    console.print(table)
    console.print(f"model folder: {(home or keypaint_home()) / 'models'}")


@app.command("info", no_args_is_help=True)
@user_errors
def info_command(
    images: Annotated[list[Path], typer.Argument(help="pictures made by keypaint or A1111")],
    as_json: Annotated[bool, typer.Option("--json", help="print the reproduction JSON only")] = False,
) -> None:
    """Print the parameters stored in pictures (A1111 infotext and keypaint's JSON)."""
    from keypaint.outputs.metadata import read_metadata

    for path in images:
        meta = read_metadata(path)
        if as_json:
            console.print_json(json.dumps(meta.data or {}))
            continue
        console.rule(str(path))
        if meta.infotext is None and meta.data is None:
            console.print("no generation parameters stored in this picture")
        if meta.infotext:
            console.print(meta.infotext, markup=False)
        if meta.data:
            console.print_json(json.dumps(meta.data))


def _mount_optional() -> None:
    """Sub-commands that live in their own modules (data preparation, training, export, evaluation)."""
    from keypaint.cli.bench_cmd import bench_app
    from keypaint.cli.data_cmd import data_app
    from keypaint.cli.eval_cmd import eval_app
    from keypaint.cli.explain_cmd import explain_app
    from keypaint.cli.finetune_cmd import finetune_command
    from keypaint.cli.serve_cmd import serve_command
    from keypaint.cli.train_cmd import export_command, train_app
    from keypaint.cli.verify_cmd import verify_command

    app.add_typer(data_app, name="data", help="Prepare training data.")
    app.add_typer(bench_app, name="bench", help="Time keypaint against plain diffusers.")
    app.add_typer(train_app, name="train", help="Train the built-in model's parts (vae, unet, scorer).")
    app.command("finetune", no_args_is_help=True)(finetune_command)
    app.command("export", no_args_is_help=True)(export_command)
    app.add_typer(
        eval_app(), name="eval",
        help="Judge a model: held-out pairs (`eval HELDOUT` = `eval pairs HELDOUT`), or a learned style.",
    )
    app.command("serve")(serve_command)
    app.command("verify", no_args_is_help=True)(verify_command)
    app.add_typer(explain_app, name="explain", help="See the two chains and the latent space.")


def _quiet_libraries() -> None:
    """The CLI shows its own progress: library warnings would only clutter it (set before they load)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    _quiet_libraries()
    # OpenMP threads that spin while they wait make a busy 2-core machine up to 30x slower (measured,
    # docs/performance.md); waiting passively costs little on an idle one. Set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _mount_optional()
    try:
        app()
    finally:
        # Nothing is left to free: skip the interpreter's final collection over torch's millions of
        # objects, which takes 1-2 s of every command's exit (docs/performance.md, cold start).
        gc.freeze()
