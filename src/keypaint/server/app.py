"""`create_app`: the FastAPI application behind `keypaint serve` (page, A1111 API, job API, files)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from keypaint.core.painter import Painter
from keypaint.outputs.leftovers import remove_stale_leftovers
from keypaint.outputs.remote import RemoteFolder
from keypaint.outputs.saving import check_writable
from keypaint.server.api import job_router
from keypaint.server.config import ServerConfig
from keypaint.server.controlnet_api import controlnet_router
from keypaint.server.errors import install
from keypaint.server.explain_routes import explain_router
from keypaint.server.finetune_api import finetune_router
from keypaint.server.models import ModelHost, PainterFactory
from keypaint.server.sdapi import sdapi_router
from keypaint.server.security import Guard
from keypaint.server.state import ServerState
from keypaint.server.stores import Store, open_store
from keypaint.server.verify import find_verifier, verify_router
from keypaint.server.worker import Worker, WorkerFactory

STATIC = Path(__file__).resolve().parent / "static"
SERVED_SUFFIXES = (".png",)


def default_factory(config: ServerConfig) -> PainterFactory:
    """Load models the way the CLI does, with the server's device, dtype, home, limits and speed options."""

    def load(name: str | None) -> Painter:
        from keypaint.builtin import MODEL

        # no scorer: the job API does not offer best-of
        return Painter.load(name, device=config.device, dtype=config.dtype, home=config.home,
                            limits=config.limits, speed=config.speed, allow_pickle=config.allow_pickle,
                            max_model_bytes=config.max_model_bytes, builtin=MODEL)

    return load


def create_app(config: ServerConfig, *, painter: Painter | None = None,
               factory: PainterFactory | None = None, store: Store | None = None,
               worker_class: WorkerFactory = Worker) -> FastAPI:
    """The app for `config`; `painter` is the model to start with (default: `factory(config.model)`).

    `store` (default: the one `config` names) and `worker_class` let keypaint.cluster run the same app as
    Ray Serve's ingress, whose worker hands jobs to Painter replicas instead of painting them."""
    config.check_bind()
    remote = RemoteFolder(config.out_url) if config.out_url else None  # serve --out s3://... (fsspec)
    if remote is not None:
        remote.check_writable()
    else:
        check_writable(config.out)
        remove_stale_leftovers(config.out)  # temporary files of saves a killed server never finished
    factory = factory or default_factory(config)
    painter = painter or factory(config.model)
    store = store or open_store(config)
    host = ModelHost(factory, painter, home=config.home, allow_pickle=config.allow_pickle,
                     max_model_bytes=config.max_model_bytes)
    worker = worker_class(store, host, config)
    state = ServerState(config, store, host, worker)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)
            store.close()

    # No /docs: FastAPI's Swagger page loads its scripts from a CDN, and keypaint fetches nothing outside.
    app = FastAPI(title="keypaint", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.keypaint = state
    install(app, worker.retry_after)
    app.include_router(sdapi_router(state))
    app.include_router(controlnet_router(state))  # sd-webui-controlnet's /controlnet routes
    app.include_router(job_router(state))
    app.include_router(finetune_router(state))
    app.include_router(explain_router(state))
    verifier = find_verifier()
    if verifier is not None:
        app.include_router(verify_router(state, verifier))

    @app.get("/files/{name:path}", include_in_schema=False)
    def files(name: str, download: bool = False) -> Response:
        disposition = "attachment" if download else "inline"
        if remote is not None:
            data = remote.read(name) if plain_name(name) else None
            if data is None:
                raise HTTPException(404, "no such file")
            filename = name.rsplit("/", 1)[-1]
            return Response(data, media_type="image/png", headers={
                "Content-Disposition": f'{disposition}; filename="{filename}"' if download else disposition})
        path = safe_path(config.out, name)
        if path is None:
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type="image/png", filename=path.name if download else None,
                            content_disposition_type=disposition)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, config=config)
    return app


def safe_path(root: Path, name: str) -> Path | None:
    """The file `name` names inside `root`, or None if it could lead anywhere else.

    `name` arrives percent-decoded; it must be a `plain_name`, and must still be inside `root` once
    symbolic links are resolved.
    """
    if not plain_name(name):
        return None
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def plain_name(name: str) -> bool:
    """`name` is a plain relative path of visible parts ending in .png (no way out of the output folder)."""
    if not name or len(name) > 1024 or any(ch in name for ch in "\\\0:") or name.startswith("/"):
        return False
    parts = name.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return False
    return name.lower().endswith(SERVED_SUFFIXES)
