"""`keypaint serve --ray` end to end from the command line: it starts its own local Ray with 2 CPU Painter
replicas of a tiny model, jobs in a real PostgreSQL, answers A1111's txt2img, and SIGTERM stops it with
every Ray process it started."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.cluster.conftest import free_port


def test_serve_ray_from_the_command_line(postgres: Any, cluster_home: Path, tmp_path: Path) -> None:
    url = postgres.new_database(f"serve_cli_{uuid.uuid4().hex[:8]}")
    port, out = free_port(), tmp_path / "outputs"
    command = [sys.executable, "-m", "keypaint", "serve", "--ray", "--db", url, "--replicas", "2",
               "--port", str(port), "--model", "tiny", "--home", str(cluster_home), "--device", "cpu",
               "--out", str(out)]
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                answers = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=5).status_code == 200
                if answers and "keypaint is serving" in log.read_text():  # both replicas deployed
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        started = psutil.Process(process.pid).children(recursive=True)
        assert any("raylet" in " ".join(p.cmdline()) for p in started), "a local Ray was started"

        body = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 4, "save_images": True}
        answer = httpx.post(f"http://127.0.0.1:{port}/sdapi/v1/txt2img", json=body, timeout=180)
        assert answer.status_code == 200, answer.text
        [image] = answer.json()["images"]
        [saved] = out.glob("*/*.png")
        assert base64.b64decode(image) == saved.read_bytes() and saved.name.endswith("-4.png")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, log.read_text()[-3000:]
    _gone, alive = psutil.wait_procs(started, timeout=60)
    assert not alive, f"Ray processes left behind: {[p.name() for p in alive]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the HTTP proxy let go of its port
