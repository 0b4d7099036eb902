"""A local Ray (2 CPUs, no dashboard) running keypaint's Serve application with tiny models, jobs in a real
PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keypaint.server.config import ServerConfig

ray = pytest.importorskip("ray", reason="Ray is keypaint[cluster]'s: pip install -e '.[cluster]'")
serve = pytest.importorskip("ray.serve")


@pytest.fixture(scope="session")
def cluster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keypaint home whose model folder holds two tiny SD 1.x models (tiny, and tiny-b for switching)."""
    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_pipeline

    home = tmp_path_factory.mktemp("cluster-home")
    for name, seed in (("tiny", 0), ("tiny-b", 1)):
        tiny_pipeline(ModelKind.SD1, seed=seed).save_pretrained(home / "models" / name)
    return home


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    serve.shutdown()
    ray.shutdown()


@dataclass
class Deployed:
    url: str
    config: ServerConfig

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deploy(config: ServerConfig, replicas: int) -> Deployed:
    """keypaint's Serve app on the local Ray with `replicas` CPU Painter replicas; waits until it answers."""
    from keypaint.cluster.serve_app import APP_NAME, Replicas, build_app

    serve.start(http_options={"host": "127.0.0.1", "port": config.port})
    serve.run(build_app(config, Replicas(fixed=replicas)), name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/info", timeout=10).status_code == 200:
                return Deployed(url, config)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("keypaint on Ray did not answer in 120 s")
