"""1 against 2 CPU Painter replicas of `keypaint serve --ray`, measured side by side in one run.

    python benchmarks/scale_out.py                      # tiny model, 24 jobs, 8 clients, 20 steps at 64 px
    python benchmarks/scale_out.py --jobs 48 --steps 30

Starts a PostgreSQL (Debian's binaries, as the tests do) and a local Ray with 2 CPUs, deploys keypaint's
Serve application with 1 replica, then with 2 (each replica one CPU thread, so the two rows differ only in
the replica count), sends the same jobs through /api/jobs from concurrent clients and prints pictures/s and
the p50/p95 latency (submit -> finished) of each; exit status 1 if a job is lost, failed or duplicated.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/postgres.py starts the database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_job(url: str, body: dict) -> tuple[float, str, int]:
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as client:
        job_id = client.post("/api/jobs", json=body).raise_for_status().json()["id"]
        while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("succeeded", "failed",
                                                                                  "cancelled"):
            time.sleep(0.05)
    return time.perf_counter() - start, job["status"], len(job.get("images", []))


def measure(replicas: int, args: argparse.Namespace, postgres, home: Path, port: int) -> dict[str, float]:
    from ray import serve

    from keypaint.cluster.serve_app import APP_NAME, Replicas, build_app
    from keypaint.server.config import ServerConfig

    config = ServerConfig(port=port, out=Path(tempfile.mkdtemp(prefix="scale-out-")), model="tiny", home=home,
                          device="cpu", db_url=postgres.new_database(f"bench_{uuid.uuid4().hex[:8]}"),
                          max_queue=args.jobs + 8)
    serve.run(build_app(config, Replicas(fixed=replicas)), name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    one_job(url, {"keywords": ["warm up"], "steps": 2, "width": args.size, "height": args.size})
    bodies = [{"keywords": ["a red fox"], "steps": args.steps, "width": args.size, "height": args.size,
               "seed": seed} for seed in range(args.jobs)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        done = list(pool.map(lambda body: one_job(url, body), bodies))
    wall = time.perf_counter() - start
    serve.delete(APP_NAME)
    latencies = sorted(seconds for seconds, _status, _n in done)
    ok = sum(1 for _s, status, n in done if status == "succeeded" and n == 1)
    return {"replicas": replicas, "jobs": len(done), "ok": ok, "pictures_s": ok / wall,
            "p50": statistics.median(latencies), "p95": latencies[int(0.95 * (len(latencies) - 1))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import ray
    from ray import serve
    from tests.postgres import binaries, start_postgres

    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_pipeline

    found = binaries()
    if found is None:
        print("PostgreSQL's server binaries are not installed (apt-get install postgresql)", file=sys.stderr)
        return 2
    postgres = start_postgres(found)
    home = Path(tempfile.mkdtemp(prefix="scale-out-home-"))
    tiny_pipeline(ModelKind.SD1, seed=0).save_pretrained(home / "models" / "tiny")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        rows = [measure(replicas, args, postgres, home, port) for replicas in (1, 2)]
    finally:
        serve.shutdown()
        ray.shutdown()
        postgres.stop()
    print(f"tiny SD 1.x model, {args.steps} steps at {args.size} px, {args.jobs} jobs from {args.clients} "
          "clients, 1 CPU thread per replica, local Ray with 2 CPUs")
    print("| Painter replicas | pictures/s | p50 s | p95 s | jobs ok |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['pictures_s']:.2f} | {row['p50']:.2f} | {row['p95']:.2f} | "
              f"{row['ok']}/{row['jobs']} |")
    print(f"speedup: {rows[1]['pictures_s'] / rows[0]['pictures_s']:.2f}x")
    return 0 if all(row["ok"] == row["jobs"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
