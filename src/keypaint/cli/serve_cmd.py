"""`keypaint serve`: the web page, A1111's HTTP API and keypaint's job API in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keypaint.cli.errors import fail, user_errors
from keypaint.cli.model_options import AllowPickle, MaxModelGb, model_size_limit
from keypaint.cli.speed_options import DeepCache, Fast, TokenMerging
from keypaint.core.params import Limits

console = Console(highlight=False, stderr=True)


@user_errors
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on; beyond loopback needs --auth or --token")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (A1111's 7860 by default)")] = 7860,
    model: Annotated[
        str | None,
        typer.Option(help="model to start with (see `keypaint models`) (default: the built-in model)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="gallery folder; pictures go to OUT/YYYY-MM-DD/")
                   ] = Path("outputs"),
    db: Annotated[Path | None, typer.Option(help="job database (default: OUT/keypaint-server.sqlite3)")
                  ] = None,
    auth: Annotated[
        str | None, typer.Option(help="require HTTP Basic USER:PASSWORD", envvar="KEYPAINT_SERVE_AUTH")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="require this bearer token (open the page once as /?token=...)",
                     envvar="KEYPAINT_SERVE_TOKEN"),
    ] = None,
    allow_origin: Annotated[
        list[str] | None, typer.Option(help="another origin allowed to send requests that change state")
    ] = None,
    max_queue: Annotated[int, typer.Option(help="queued jobs before new ones get 429")] = 32,
    max_pixels: Annotated[int, typer.Option(help="pixel budget per picture")] = Limits().max_pixels,
    max_pixel_steps: Annotated[
        int, typer.Option(help="budget per request: width x height x steps x pictures")
    ] = 1024 * 1024 * 50 * 4,
    max_body_mb: Annotated[int, typer.Option(help="largest request body, in MiB")] = 24,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16")] = "auto",
    home: Annotated[Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")
                    ] = None,
    allow_pickle: AllowPickle = False,
    max_model_gb: MaxModelGb = None,
    fast: Fast = False,
    deep_cache: DeepCache = 1,
    token_merging: TokenMerging = 0.0,
) -> None:
    """Serve the web page at /, A1111's /sdapi/v1 API and keypaint's /api job queue."""
    from keypaint.core.speed.options import SpeedOptions
    from keypaint.server.config import ServerConfig, parse_auth

    # live previews read each step's latents as tensors, so the server never starts from a frozen bundle
    speed = SpeedOptions(fast=fast, deep_cache=deep_cache, token_merging=token_merging)
    speed.validate()  # before the model loads
    try:
        credentials = parse_auth(auth) if auth is not None else None
        config = ServerConfig(
            host=host, port=port, out=out, db=db, model=model, home=home, device=device, dtype=dtype,
            limits=Limits(max_pixels=max_pixels), speed=speed, max_pixel_steps=max_pixel_steps,
            max_queue=max_queue, max_body_bytes=max_body_mb * 1024 * 1024, auth=credentials,
            token=token, allowed_origins=tuple(allow_origin or ()), allow_pickle=allow_pickle,
            max_model_bytes=model_size_limit(max_model_gb),
        )
        config.check_bind()
    except ValueError as err:
        raise fail(str(err)) from None

    import uvicorn

    from keypaint.server.app import create_app

    console.print(f"loading {model or 'the built-in model'} ...")
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"keypaint is serving http://{shown}:{port}/  (A1111 API at /sdapi/v1, jobs at /api)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
