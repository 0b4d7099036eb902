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
    out: Annotated[str, typer.Option(help="gallery folder, or an fsspec URL (s3://bucket/prefix; needs "
                                          "--db); pictures go to OUT/YYYY-MM-DD/")] = "outputs",
    db: Annotated[str | None, typer.Option(
        help="job database: a SQLite file (default: OUT/keypaint-server.sqlite3) or "
             "postgresql://USER@HOST/DB, shared by several servers (and --ray's replicas)")] = None,
    lease: Annotated[float, typer.Option(
        min=1.0, help="with a PostgreSQL --db: seconds a silent server keeps its running job before "
                      "another one runs it (once)")] = 30.0,
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
    max_upload_mb: Annotated[int, typer.Option(help="largest POST /api/finetune body (pictures), in MiB")
                             ] = 64,
    max_finetune_steps: Annotated[int, typer.Option(help="most steps a POST /api/finetune run may ask")
                                  ] = 2000,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16")] = "auto",
    home: Annotated[Path | None, typer.Option(help="keypaint's data folder (default: $KEYPAINT_HOME)")
                    ] = None,
    allow_pickle: AllowPickle = False,
    max_model_gb: MaxModelGb = None,
    fast: Fast = False,
    deep_cache: DeepCache = 1,
    token_merging: TokenMerging = 0.0,
    ray: Annotated[bool, typer.Option(
        "--ray", help="serve as a Ray Serve application: an ingress and Painter replicas (needs a "
                      "PostgreSQL --db and keypaint[cluster])")] = False,
    address: Annotated[str | None, typer.Option(help="with --ray: the Ray cluster (default: start one here)")
                       ] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="with --ray: Painter replicas (default: one "
                                                 "per GPU, else 1)")] = None,
    min_replicas: Annotated[int | None, typer.Option(min=0, help="with --ray: autoscale from this many ...")
                            ] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1, help="... to this many, on the queue's length")
                            ] = None,
) -> None:
    """Serve the web page at /, A1111's /sdapi/v1 API and keypaint's /api job queue."""
    from keypaint.core.speed.options import SpeedOptions
    from keypaint.server.config import ServerConfig, parse_auth

    # live previews read each step's latents as tensors, so the server never starts from a frozen bundle
    speed = SpeedOptions(fast=fast, deep_cache=deep_cache, token_merging=token_merging)
    speed.validate()  # before the model loads
    try:
        credentials = parse_auth(auth) if auth is not None else None
        db_path, db_url = database(db)
        out_url = output_url(out, db)
        config = ServerConfig(
            host=host, port=port, out=Path(out if out_url is None else "."), out_url=out_url, db=db_path,
            db_url=db_url, lease_s=lease, model=model, home=home,
            device=device, dtype=dtype,
            limits=Limits(max_pixels=max_pixels), speed=speed, max_pixel_steps=max_pixel_steps,
            max_queue=max_queue, max_body_bytes=max_body_mb * 1024 * 1024, auth=credentials,
            token=token, allowed_origins=tuple(allow_origin or ()), allow_pickle=allow_pickle,
            max_model_bytes=model_size_limit(max_model_gb),
            max_upload_bytes=max_upload_mb * 1024 * 1024, max_finetune_steps=max_finetune_steps,
        )
        config.check_bind()
        check_ray_options(ray, db_url, address, replicas, min_replicas, max_replicas)
    except ValueError as err:
        raise fail(str(err)) from None

    if ray:
        from keypaint.cluster.serve_app import run_on_ray

        run_on_ray(config, address=address, replicas=replicas, min_replicas=min_replicas,
                   max_replicas=max_replicas, console=console)
        return

    import uvicorn

    from keypaint.server.app import create_app

    console.print(f"loading {model or 'the built-in model'} ...")
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"keypaint is serving http://{shown}:{port}/  (A1111 API at /sdapi/v1, jobs at /api)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def output_url(out: str, db: str | None) -> str | None:
    """--out as an fsspec URL (None: a local folder); no job database goes beside a URL: --db is needed."""
    from keypaint.outputs.remote import is_url

    if not is_url(out):
        return None
    if db is None:
        raise ValueError(f"--out {out} is not a folder to keep the job database in: give --db FILE or "
                         "--db postgresql://USER@HOST/DB")
    return out


def database(db: str | None) -> tuple[Path | None, str | None]:
    """--db as (SQLite file, PostgreSQL URL): a URL must be PostgreSQL's."""
    from keypaint.server.stores import is_postgres_url

    if db is None:
        return None, None
    if is_postgres_url(db):
        return None, db
    if "://" in db:
        raise ValueError(f"--db {db.split('://')[0]}://...: give a SQLite file or a postgresql:// URL")
    return Path(db), None


def check_ray_options(ray: bool, db_url: str | None, address: str | None, replicas: int | None,
                      min_replicas: int | None, max_replicas: int | None) -> None:
    """--ray's options make sense together (a `ValueError` saying what does not)."""
    given = [name for name, value in (("--address", address), ("--replicas", replicas),
                                      ("--min-replicas", min_replicas), ("--max-replicas", max_replicas))
             if value is not None]
    if not ray:
        if given:
            raise ValueError(f"{', '.join(given)} go with --ray")
        return
    if db_url is None:
        raise ValueError("--ray needs jobs every replica can reach: give --db postgresql://USER@HOST/DB")
    if replicas is not None and (min_replicas is not None or max_replicas is not None):
        raise ValueError("give --replicas N for a fixed number, or --min-replicas and --max-replicas")
    if (min_replicas is None) != (max_replicas is None):
        raise ValueError("autoscaling needs both --min-replicas and --max-replicas")
    if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
        raise ValueError(f"--min-replicas {min_replicas} is more than --max-replicas {max_replicas}")
