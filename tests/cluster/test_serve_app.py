"""`keypaint serve --ray` on a local Ray: 2 CPU Painter replicas of a tiny model, jobs in PostgreSQL.

32 concurrent clients, none lost or duplicated; a replica killed mid-job has its job run elsewhere; a
restarted ingress loses nothing; A1111's synchronous API and a model switch go through a replica; a job's
live progress and previews reach the ingress's /sdapi/v1/progress and job API."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from keypaint.server.config import ServerConfig
from tests.cluster.conftest import Deployed, deploy, free_port, ray
from tests.server.conftest import wait_for, wait_job

FAST = {"keywords": ["a red fox"], "steps": 2, "width": 64, "height": 64}
SLOW = {**FAST, "steps": 1000}  # seconds on the tiny model: long enough to kill its replica mid-job


@pytest.fixture(scope="module")
def app(local_ray: None, postgres: Any, cluster_home: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Deployed]:
    url = postgres.new_database(f"cluster_{uuid.uuid4().hex[:8]}")
    config = ServerConfig(port=free_port(), out=tmp_path_factory.mktemp("shared") / "outputs", model="tiny",
                          home=cluster_home, device="cpu", db_url=url, lease_s=2.0, max_queue=64)
    yield deploy(config, replicas=2)


def attempts(app: Deployed, job_id: str) -> tuple[int, str | None]:
    assert app.config.db_url is not None
    with psycopg.connect(app.config.db_url) as db:
        row = db.execute("SELECT attempts, owner FROM jobs WHERE id=%s", (job_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_32_concurrent_clients_none_lost_or_duplicated(app: Deployed) -> None:
    def one(index: int) -> dict[str, Any]:
        with app.client() as client:
            answer = client.post("/api/jobs", json={**FAST, "seed": index})
            assert answer.status_code == 202, answer.text
            return wait_job(client, answer.json()["id"], timeout=240)

    with ThreadPoolExecutor(32) as pool:
        jobs = list(pool.map(one, range(32)))
    assert [job["status"] for job in jobs] == ["succeeded"] * 32
    assert len({job["id"] for job in jobs}) == 32
    assert sorted(job["images"][0]["seed"] for job in jobs) == list(range(32))
    assert all(len(job["images"]) == 1 and attempts(app, job["id"])[0] == 1 for job in jobs)
    with app.client() as client:
        gallery = client.get("/api/images", params={"limit": 200}).json()
    files = [image["url"] for image in gallery["images"]]
    assert gallery["total"] >= 32 and len(files) == len(set(files))  # no picture written twice
    owners = {attempts(app, job["id"])[1] for job in jobs}
    assert len(owners) == 2, "both replicas painted"


def test_replica_killed_mid_job_has_its_job_run_elsewhere(app: Deployed) -> None:
    with app.client() as client:
        job_id = client.post("/api/jobs", json={**SLOW, "seed": 7}).json()["id"]
        wait_job(client, job_id, ("running",), timeout=120)
        _tries, owner = attempts(app, job_id)
        assert owner is not None
        os.kill(int(owner.split(":")[1]), signal.SIGKILL)  # the replica's process dies mid-job
        done = wait_job(client, job_id, timeout=300)
    assert done["status"] == "succeeded" and len(done["images"]) == 1
    tries, second = attempts(app, job_id)
    assert tries == 2 and second != owner


def test_restarted_ingress_loses_nothing(app: Deployed) -> None:
    with app.client() as client:
        ids = [client.post("/api/jobs", json={**FAST, "seed": 100 + i}).json()["id"] for i in range(6)]
    ingress = next(actor for actor in ray.util.list_named_actors(all_namespaces=True)
                   if "Ingress" in actor["name"])
    ray.kill(ray.get_actor(ingress["name"], namespace=ingress["namespace"]), no_restart=False)
    def answers() -> bool:
        try:
            return httpx.get(f"{app.url}/api/info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    time.sleep(1)
    wait_for(answers, timeout=120, every=0.5)
    with app.client() as client:
        jobs = [wait_job(client, job_id, timeout=240) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 6
    assert all(len(job["images"]) == 1 for job in jobs)


def test_a1111_request_and_model_switch_on_a_replica(app: Deployed) -> None:
    with app.client() as client:
        body = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 3,
                "override_settings": {"sd_model_checkpoint": "tiny-b"}}
        answer = client.post("/sdapi/v1/txt2img", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
    assert len(data["images"]) == 1
    assert '"sd_model_name": "tiny-b"' in data["info"]


def test_full_queue_is_429(app: Deployed) -> None:
    from keypaint.server.pg_job_store import PgJobStore

    assert app.config.db_url is not None
    store = PgJobStore(app.config.db_url)  # another ingress's waiting requests fill the shared queue
    try:
        room = app.config.max_queue - store.queued_count()
        held = [store.add_job("sdapi", {"prompt": "x"}, max_queue=64) for _ in range(room)]
        with app.client() as client:
            answer = client.post("/api/jobs", json=FAST)
        assert answer.status_code == 429 and "Retry-After" in answer.headers
    finally:
        for job in held:
            store.cancel_queued(job.id)
        store.close()


def test_live_progress_and_previews_come_from_the_replica(app: Deployed) -> None:
    with app.client() as client:
        job_id = client.post("/api/jobs", json={**SLOW, "seed": 11}).json()["id"]
        wait_job(client, job_id, ("running",), timeout=120)

        def a1111() -> dict[str, Any] | None:
            answer = client.get("/sdapi/v1/progress").json()
            return answer if answer["state"]["sampling_step"] > 0 and answer["current_image"] else None

        answer = wait_for(a1111, timeout=60, every=0.2)
        assert answer["state"]["job"] == f"job {job_id}" and answer["state"]["sampling_steps"] == 1000
        assert 0 < answer["progress"] < 1
        first = answer["state"]["sampling_step"]

        def moved_on() -> dict[str, Any] | None:
            job = client.get(f"/api/jobs/{job_id}").json()
            return job if job.get("progress", {}).get("step", 0) > first else None

        job = wait_for(moved_on, timeout=60, every=0.2)
        assert job["progress"]["steps"] == 1000
        with client.stream("GET", f"/api/jobs/{job_id}/events") as events:
            preview = next(line for line in events.iter_lines() if '"preview": "data:image/png' in line)
        assert preview.startswith("data: ")
        assert client.delete(f"/api/jobs/{job_id}").status_code == 202
        assert wait_job(client, job_id, timeout=120)["status"] == "cancelled"
