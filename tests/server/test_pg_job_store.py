"""PgJobStore on a real PostgreSQL (tests/postgres.py): claims are atomic across processes, a runner that is
killed mid-job has its job run once more elsewhere and then failed, reopening loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keypaint.server.job_store import QueueFull
from keypaint.server.pg_job_store import PgJobStore
from tests.server.conftest import wait_for

SPEC = {"prompt": "a red fox", "steps": 2}
SRC = str(Path(__file__).resolve().parents[2] / "src")

# A runner in its own process: claims jobs and prints their ids (CLAIM ALL), or claims one and hangs (ONE).
RUNNER = """
import sys, time
from keypaint.server.pg_job_store import PgJobStore
store = PgJobStore(sys.argv[1], lease_s=float(sys.argv[3]))
print("ready", flush=True)
while True:
    job = store.claim(store.owner)
    if job is None and sys.argv[2] == "all":
        break
    if job is not None:
        print(job.id, flush=True)
        if sys.argv[2] == "one":
            time.sleep(600)  # killed here, mid-job
        store.finish(job.id, "succeeded")
"""


def runner(url: str, mode: str, lease_s: float = 30.0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", RUNNER, url, mode, str(lease_s)], stdout=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture
def store(pg_url: str):  # type: ignore[no-untyped-def]
    opened = PgJobStore(pg_url, lease_s=1.0)
    yield opened
    opened.close()


def test_claims_are_atomic_across_processes(pg_url: str, store: PgJobStore) -> None:
    ids = [store.add_job("job", SPEC, max_queue=100).id for _ in range(60)]
    procs = [runner(pg_url, "all") for _ in range(3)]
    outputs = [proc.communicate(timeout=120)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    claimed = [line for out in outputs for line in out if line != "ready"]
    assert sorted(claimed) == sorted(ids), "every job claimed exactly once"
    assert {job.status for job in store.list_jobs(100)} == {"succeeded"}


def test_killed_runner_job_runs_once_more_then_fails(store: PgJobStore, pg_url: str) -> None:
    job = store.add_job("job", SPEC, max_queue=10)
    for attempt in (1, 2):
        proc = runner(pg_url, "one", lease_s=1.0)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip() == job.id
        running = store.get_job(job.id)
        assert running is not None and running.status == "running"
        os.kill(proc.pid, signal.SIGKILL)  # the replica dies mid-job
        proc.wait(30)
        expected = "queued" if attempt == 1 else "failed"
        settled = wait_for(lambda e=expected: (j := store.get_job(job.id)) and j.status == e and j, 15)
    assert "stopped, twice" in (settled.error or "")


def test_sdapi_request_stays_with_its_process(store: PgJobStore, pg_url: str) -> None:
    other = PgJobStore(pg_url, lease_s=1.0)
    try:
        mine = store.add_job("sdapi", SPEC, max_queue=10)
        assert other.claim(other.owner) is None  # its client waits on `store`, not on `other`
        waiting = other.add_job("sdapi", SPEC, max_queue=10)
        claimed = store.claim(store.owner)
        assert claimed is not None and claimed.id == mine.id
    finally:
        other.close()  # `other` stops: the request its client waited on can never be answered
    failed = wait_for(lambda: (j := store.get_job(waiting.id)) and j.status == "failed" and j, 15)
    assert failed.error == "the server holding this request stopped"


def test_finetune_job_stays_with_the_process_holding_its_pictures(store: PgJobStore, pg_url: str) -> None:
    other = PgJobStore(pg_url, lease_s=1.0)
    try:
        mine = store.add_job("finetune", {"token": "zqdisc", "steps": 2}, max_queue=10)
        assert other.claim(other.owner) is None  # its pictures are in `store`'s home
        claimed = store.claim(store.owner)
        assert claimed is not None and (claimed.id, claimed.kind) == (mine.id, "finetune")
    finally:
        other.close()


def test_reopening_loses_nothing(store: PgJobStore, pg_url: str) -> None:
    ingress = PgJobStore(pg_url, lease_s=1.0)
    ids = [ingress.add_job("job", SPEC, max_queue=10).id for _ in range(3)]
    running = store.claim(store.owner)
    assert running is not None and running.id == ids[0]
    ingress.close()
    time.sleep(2.5)  # longer than the lease: the closed one is gone, its jobs were never its own to lose
    reopened = PgJobStore(pg_url, lease_s=1.0)
    try:
        statuses = {job.id: job.status for job in reopened.list_jobs()}
        assert statuses == {ids[0]: "running", ids[1]: "queued", ids[2]: "queued"}
        assert reopened.position(reopened.get_job(ids[2])) == 1  # type: ignore[arg-type]
    finally:
        reopened.close()


def test_queue_bound_and_cancel_are_shared(store: PgJobStore, pg_url: str) -> None:
    other = PgJobStore(pg_url, lease_s=1.0)
    try:
        first = store.add_job("job", SPEC, max_queue=2)
        other.add_job("job", SPEC, max_queue=2)
        with pytest.raises(QueueFull):
            store.add_job("job", SPEC, max_queue=2)
        claimed = other.claim(other.owner)
        assert claimed is not None and claimed.id == first.id
        assert not store.cancel_queued(first.id)  # running elsewhere: ask its runner instead
        assert not other.cancel_requested(first.id)
        assert store.request_cancel(first.id)
        assert other.cancel_requested(first.id)
        image = store.add_image(first.id, "2026-01-01/00001.png", seed=7, width=64, height=64, infotext="x",
                                metadata={"params": {}}, spec=SPEC)
        page, total = other.images(job_id=first.id)
        assert total == 1 and page[0].id == image and page[0].seed == 7
    finally:
        other.close()
