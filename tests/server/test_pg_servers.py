"""Two keypaint servers sharing one PostgreSQL job store and one output folder: each job runs once on one
of them, a job is cancelled from the server that does not run it, and a job's events reach either."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from keypaint.core.painter import Painter
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_job


def two_servers(serve: Callable[..., Running], config: ServerConfig, pg_url: str) -> tuple[Running, Running]:
    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_model

    shared = replace(config, db_url=pg_url, lease_s=2.0, max_queue=64)
    return serve(shared), serve(shared, painter=Painter(tiny_model(ModelKind.SD1)))  # a model each


def test_shared_queue_runs_each_job_once(serve, config: ServerConfig, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    first, second = two_servers(serve, config, pg_url)

    def one(index: int) -> dict[str, Any]:
        with (first if index % 2 else second).client() as client:
            answer = client.post("/api/jobs", json={"keywords": ["fox"], **FAST, "seed": index})
            assert answer.status_code == 202, answer.text
            return wait_job(client, answer.json()["id"], timeout=120)

    with ThreadPoolExecutor(12) as pool:
        jobs = list(pool.map(one, range(12)))
    assert [job["status"] for job in jobs] == ["succeeded"] * 12
    assert sorted(job["images"][0]["seed"] for job in jobs) == list(range(12))
    with first.client() as client:
        gallery = client.get("/api/images", params={"limit": 100}).json()
    assert gallery["total"] == 12 and len({image["url"] for image in gallery["images"]}) == 12
    for image in gallery["images"]:  # either server serves every picture from the shared folder
        assert second.client().get(image["url"]).status_code == 200


def test_cancel_from_the_other_server(serve, config: ServerConfig, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    first, second = two_servers(serve, config, pg_url)
    with first.client() as client:
        job_id = client.post("/api/jobs", json={"keywords": ["slow"], **FAST, "steps": 1000}).json()["id"]
        wait_job(client, job_id, ("running",))
    runner, other = (first, second) if first.state.worker.progress else (second, first)
    assert runner.state.worker.progress is not None and other.state.worker.progress is None
    with other.client() as client:
        assert client.delete(f"/api/jobs/{job_id}").status_code == 202
        done = wait_job(client, job_id, timeout=30)
    assert done["status"] == "cancelled"
