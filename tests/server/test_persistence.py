"""Restarts: queued jobs stay queued and run, the interrupted job is failed (not re-run), the gallery
stays, whether the server was stopped or killed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

from keypaint.server.config import ServerConfig
from keypaint.server.job_store import JobStore
from tests.server.conftest import FAST, wait_for, wait_job

LONG = {"keywords": ["slow"], "steps": 1000, "width": 64, "height": 64}


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("SELECT id, status FROM jobs").fetchall())


def test_restart_keeps_queue_and_gallery(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    config = replace(config, max_queue=5)
    first = serve(config)
    with first.client() as client:
        kept = client.post("/api/jobs", json={"keywords": ["kept"], **FAST}).json()["id"]
        kept_image = wait_job(client, kept)["images"][0]
        running = client.post("/api/jobs", json=LONG).json()["id"]
        wait_job(client, running, ("running",))
        queued = [client.post("/api/jobs", json={"keywords": [f"later {i}"], **FAST}).json()["id"]
                  for i in range(2)]
    first.stop()

    on_disk = statuses(config.db_path)
    assert on_disk[running] == "failed" and [on_disk[q] for q in queued] == ["queued", "queued"]

    second = serve(config)
    with second.client() as client:
        interrupted = client.get(f"/api/jobs/{running}").json()
        assert interrupted["status"] == "failed" and "stopped" in interrupted["error"]
        done = [wait_job(client, q) for q in queued]
        assert [d["status"] for d in done] == ["succeeded", "succeeded"]
        assert done[0]["started"] <= done[1]["started"]  # in the order they were queued
        gallery = client.get("/api/images").json()
        assert gallery["total"] == 3 and kept_image["id"] in {i["id"] for i in gallery["images"]}
        assert client.get(kept_image["url"]).status_code == 200
        assert client.get(f"/api/jobs/{running}").json()["status"] == "failed"  # never re-run


def test_store_settles_what_a_crash_left(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    running = store.add_job("job", {"prompt": "a"}, max_queue=9)
    waiting = store.add_job("job", {"prompt": "b"}, max_queue=9)
    orphan = store.add_job("sdapi", {"prompt": "c"}, max_queue=9)
    assert store.start(running.id)
    store.close()  # as a kill leaves it: one running, two queued

    reopened = JobStore(tmp_path / "jobs.sqlite3")
    assert reopened.recovered == 2
    assert reopened.get_job(running.id).status == "failed"  # type: ignore[union-attr]
    assert reopened.get_job(waiting.id).status == "queued"  # type: ignore[union-attr]
    assert reopened.get_job(orphan.id).status == "failed"  # type: ignore[union-attr]  # its client is gone
    reopened.close()


def test_killed_server_restarts_cleanly(serve, config: ServerConfig, tmp_path: Path,  # type: ignore[no-untyped-def]
                                        tiny_models_home: Path) -> None:
    """`keypaint serve` in its own process, killed with SIGKILL mid-job, then started again."""
    port = free_port()
    script = ("import typer; from keypaint.cli.serve_cmd import serve_command; "
              "app = typer.Typer(); app.command()(serve_command); app()")
    args = [sys.executable, "-c", script, "--port", str(port), "--model", "tiny-a", "--out", str(config.out),
            "--device", "cpu", "--max-queue", "4"]
    env = {**os.environ, "KEYPAINT_HOME": str(tiny_models_home), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: up(url) or process.poll() is not None, timeout=120, every=0.2)
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        with httpx.Client(base_url=url, timeout=30) as client:
            running = client.post("/api/jobs", json=LONG).json()["id"]
            wait_job(client, running, ("running",))
            queued = client.post("/api/jobs", json={"keywords": ["after the crash"], **FAST}).json()["id"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    assert statuses(config.db_path)[running] == "running"  # nobody got to clean up
    second = serve(config)
    with second.client() as client:
        assert client.get(f"/api/jobs/{running}").json()["status"] == "failed"
        assert wait_job(client, queued)["status"] == "succeeded"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/info", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.2)
        return False


def test_start_removes_what_killed_saves_left(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    day = config.out / "2026-01-01"
    day.mkdir(parents=True)
    stale, live = day / ".keypaint-k1ll3d.png.tmp", day / ".keypaint-busy.png.tmp"
    for path in (stale, live):
        path.write_bytes(b"\x89PNG half a picture")
    then = time.time() - 3600
    os.utime(stale, (then, then))
    serve(config)
    assert not stale.exists() and live.exists()  # the fresh one may belong to another running process
