"""Load benchmark for `keypaint serve`: N concurrent clients on loopback, bounded in count and time.

    python benchmarks/server_load.py --clients 8 --requests 5            # starts its own tiny-model server
    python benchmarks/server_load.py --api sdapi --clients 4 --requests 3
    python benchmarks/server_load.py --url http://127.0.0.1:7860 --width 128 --height 128   # a running server

Each client sends its requests one after another (keypaint's /api/jobs, following each accepted job to
the end, or A1111's synchronous /sdapi/v1/txt2img). A 429 counts as rejected and is not retried. Prints
throughput, p50/p95 latency (submit -> finished, accepted requests) and the ledger
submitted = completed + rejected (+ failed), checking that no accepted job was lost or duplicated.
Exit status 1 if the ledger does not balance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

import httpx

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Ledger:
    submitted: int = 0
    completed: int = 0
    rejected: int = 0
    failed: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: Any) -> None:
        with self.lock:
            for name, value in counts.items():
                if name == "latency":
                    self.latencies.append(value)
                elif name == "job_id":
                    self.job_ids.append(value)
                elif name == "error":
                    self.errors[value] += 1
                else:
                    setattr(self, name, getattr(self, name) + value)


def client_loop(url: str, args: argparse.Namespace, index: int, ledger: Ledger, deadline: float) -> None:
    payload = {"steps": args.steps, "width": args.width, "height": args.height, "seed": index}
    with httpx.Client(base_url=url, timeout=args.timeout) as client:
        for n in range(args.requests):
            if time.monotonic() > deadline:
                return
            ledger.add(submitted=1)
            started = time.monotonic()
            if args.api == "sdapi":
                response = client.post("/sdapi/v1/txt2img", json={"prompt": f"client {index} request {n}",
                                                                  **payload})
                if response.status_code == 429:
                    ledger.add(rejected=1)
                elif response.status_code == 200 and len(response.json()["images"]) == 1:
                    ledger.add(completed=1, latency=time.monotonic() - started)
                else:
                    ledger.add(failed=1, error=f"{response.status_code} {response.text[:80]}")
                continue
            response = client.post("/api/jobs", json={"keywords": [f"client {index}", f"request {n}"],
                                                      **payload})
            if response.status_code == 429:
                ledger.add(rejected=1)
                continue
            if response.status_code != 202:
                ledger.add(failed=1, error=f"{response.status_code} {response.text[:80]}")
                continue
            job_id = response.json()["id"]
            ledger.add(job_id=job_id)
            status = follow(client, job_id, deadline + args.timeout)
            if status == "succeeded":
                ledger.add(completed=1, latency=time.monotonic() - started)
            elif status is None:
                ledger.add(lost=1)
            else:
                ledger.add(failed=1, error=status)


def follow(client: httpx.Client, job_id: str, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] == "succeeded" and len(job.get("images", [])) != 1:
                return "wrong number of images"
            return str(job["status"])
        time.sleep(0.05)
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(url: str, args: argparse.Namespace) -> int:
    if urlsplit(url).hostname not in LOOPBACK:
        raise SystemExit("this benchmark only targets loopback addresses")
    with httpx.Client(base_url=url, timeout=30) as client:
        before = client.get("/api/images").json()["total"] if args.api == "jobs" else 0
        info = client.get("/api/info").json()
    ledger = Ledger()
    deadline = time.monotonic() + args.max_seconds
    threads = [threading.Thread(target=client_loop, args=(url, args, i, ledger, deadline))
               for i in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    with httpx.Client(base_url=url, timeout=30) as client:
        after = client.get("/api/images").json()["total"] if args.api == "jobs" else 0

    duplicated = len(ledger.job_ids) - len(set(ledger.job_ids))
    if args.api == "jobs":
        duplicated += max(0, (after - before) - ledger.completed)  # more pictures saved than jobs done
    balanced = (ledger.submitted == ledger.completed + ledger.rejected + ledger.failed + ledger.lost
                and ledger.lost == 0 and duplicated == 0)
    print(f"server_load: {args.clients} clients x {args.requests} requests via "
          f"{'/api/jobs' if args.api == 'jobs' else '/sdapi/v1/txt2img'}, model {info['model']}, "
          f"{args.width}x{args.height}, {args.steps} steps, queue max {info['queue']['max']}")
    print(f"submitted {ledger.submitted} = completed {ledger.completed} + rejected {ledger.rejected} "
          f"+ failed {ledger.failed} + lost {ledger.lost}; duplicated {duplicated}; "
          f"{'balanced' if balanced else 'NOT BALANCED'}")
    print(f"throughput {ledger.completed / wall:.2f} pictures/s over {wall:.1f} s")
    p50, p95 = percentile(ledger.latencies, 50), percentile(ledger.latencies, 95)
    print(f"latency p50 {p50:.2f} s, p95 {p95:.2f} s (submit -> finished, accepted requests)")
    for error, count in ledger.errors.most_common(5):
        print(f"  failure x{count}: {error}")
    return 0 if balanced else 1


def own_server(args: argparse.Namespace, folder: Path) -> Any:
    """A keypaint server on a free loopback port with a tiny model (the default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import socket

    import uvicorn

    from keypaint import Painter
    from keypaint.models.tiny import tiny_model
    from keypaint.server.app import create_app
    from keypaint.server.config import ServerConfig

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    config = ServerConfig(out=folder / "outputs", port=sock.getsockname()[1], max_queue=args.max_queue)
    app = create_app(config, painter=Painter(tiny_model()))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{config.port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running keypaint server on loopback (default: start one)")
    parser.add_argument("--api", choices=("jobs", "sdapi"), default="jobs")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--max-queue", type=int, default=4, help="queue bound of the server started here")
    parser.add_argument("--max-seconds", type=float, default=120, help="no new requests after this")
    parser.add_argument("--timeout", type=float, default=120, help="per request")
    args = parser.parse_args(argv)
    if args.clients > 64 or args.requests > 100:
        raise SystemExit("bounded on purpose: at most 64 clients x 100 requests")
    if args.url:
        return run(args.url, args)
    with TemporaryDirectory(prefix="keypaint-load-") as folder:
        server, thread, url = own_server(args, Path(folder))
        try:
            return run(url, args)
        finally:
            server.should_exit = True
            thread.join(30)


if __name__ == "__main__":
    sys.exit(main())
