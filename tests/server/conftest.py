"""Real keypaint servers on loopback (uvicorn on a free port, in a thread) with tiny models."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.server.app import create_app
from keypaint.server.config import ServerConfig
from keypaint.server.models import PainterFactory
from keypaint.server.state import ServerState

FAST = {"steps": 2, "width": 64, "height": 64}  # every generating test: tiny model, 2 steps, 64 px


@dataclass
class Running:
    """One live server; `stop()` shuts it down like Ctrl-C would (graceful, lifespan end)."""

    url: str
    config: ServerConfig
    state: ServerState
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not stop"


def start_server(config: ServerConfig, painter: Painter | None = None,
                 factory: PainterFactory | None = None,
                 extend: Callable[[FastAPI, ServerState], None] | None = None) -> Running:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = replace(config, port=sock.getsockname()[1])
    app = create_app(config, painter=painter, factory=factory)
    if extend is not None:
        extend(app, app.state.keypaint)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{config.port}", config, app.state.keypaint, server, thread)


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(out=tmp_path / "outputs")


@pytest.fixture
def painter(tiny_sd1: Any) -> Painter:
    return Painter(tiny_sd1)


@pytest.fixture
def serve(painter: Painter) -> Iterator[Callable[..., Running]]:
    """Start servers (defaults: tiny SD 1.x model); all are stopped after the test."""
    started: list[Running] = []

    def _start(config: ServerConfig, **kwargs: Any) -> Running:
        kwargs.setdefault("painter", painter)
        running = start_server(config, **kwargs)
        started.append(running)
        return running

    yield _start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def server(serve: Callable[..., Running], config: ServerConfig) -> Running:
    return serve(config)


def png_b64(size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 40, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


FINISHED = ("succeeded", "failed", "cancelled")


def wait_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...] = FINISHED,
             timeout: float = 60.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(check, timeout)


@pytest.fixture(scope="session")
def tiny_model_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny SD 1.x models saved as diffusers folders (different seeds), as users keep models."""
    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_pipeline

    root = tmp_path_factory.mktemp("server-models")
    for name, seed in (("tiny-a", 0), ("tiny-b", 1)):
        tiny_pipeline(ModelKind.SD1, seed=seed).save_pretrained(root / name)
    return root


@pytest.fixture
def tiny_models_home(_private_home: Path, tiny_model_folders: Path) -> Path:
    """$KEYPAINT_HOME with tiny-a and tiny-b in its model folder."""
    models = _private_home / "models"
    models.mkdir(exist_ok=True)
    for folder in tiny_model_folders.iterdir():
        (models / folder.name).symlink_to(folder, target_is_directory=True)
    return _private_home


# Debian's chromium, driven by Playwright (its own browser download cannot work offline); these flags keep
# it from reaching for the network at start.
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tiny_sd1: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One server with the tiny SD 1.x model for a whole test module (browser and explain-tab tests)."""
    running = start_server(ServerConfig(out=tmp_path_factory.mktemp("site") / "outputs"),
                           painter=Painter(tiny_sd1))
    yield running
    running.stop()
