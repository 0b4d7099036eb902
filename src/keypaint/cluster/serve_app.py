"""The Ray Serve application of `keypaint serve --ray`: an ingress with the whole HTTP surface (the page,
A1111's API, the job API, the files) and a Painter deployment that runs the jobs.

Painter replicas take one job at a time (`max_ongoing_requests=1`), so the asks waiting for one are the
queue, and Ray Serve's autoscaler, aiming at one ask per replica, scales on the queue's length. A replica
gets one GPU when the cluster has GPUs, else `cpus_per_replica` CPUs. Backpressure stays the store's: a full
queue answers 429 at the ingress before anything reaches Ray.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from ray import serve
from rich.console import Console

from keypaint.cluster.dispatch import DispatchWorker
from keypaint.cluster.painter_replica import PainterReplica
from keypaint.server.app import create_app
from keypaint.server.config import ServerConfig

APP_NAME = "keypaint"


@dataclass(frozen=True)
class Replicas:
    """How many Painter replicas: `fixed`, or autoscaled between `low` and `high`; `gpus`: one each."""

    fixed: int | None = 1
    low: int | None = None
    high: int | None = None
    gpus: bool = False
    cpus_per_replica: int = 1

    def options(self) -> dict[str, Any]:
        actor: dict[str, Any] = {"num_gpus": 1} if self.gpus else {"num_cpus": self.cpus_per_replica}
        scaling: dict[str, Any] = {"num_replicas": self.fixed}
        if self.fixed is None:
            scaling = {"autoscaling_config": {"min_replicas": self.low, "max_replicas": self.high,
                                              "target_ongoing_requests": 1, "upscale_delay_s": 3,
                                              "downscale_delay_s": 60}}
        return {"ray_actor_options": actor, "max_ongoing_requests": 1, "max_queued_requests": -1, **scaling}


@serve.ingress()
class Ingress:
    """The FastAPI app of `keypaint serve`, with a worker that hands jobs to the Painter replicas."""

    def __init__(self, config: ServerConfig, painters: Any) -> None:
        self._app = create_app(config, worker_class=partial(DispatchWorker, painters=painters))

    def __serve_build_asgi_app__(self) -> Any:
        return self._app


def build_app(config: ServerConfig, replicas: Replicas) -> Any:
    """The application to `serve.run`: Ingress bound to the Painter deployment."""
    threads = None if replicas.gpus else replicas.cpus_per_replica
    painters = serve.deployment(PainterReplica, name="Painter", **replicas.options()).bind(config, threads)
    ingress = serve.deployment(Ingress, name="Ingress", num_replicas=1,
                               ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
    return ingress.bind(config, painters)


def run_on_ray(config: ServerConfig, *, address: str | None, replicas: int | None, min_replicas: int | None,
               max_replicas: int | None, console: Console) -> None:
    """`keypaint serve --ray`: join (or start) a Ray cluster, deploy, and serve until stopped."""
    import ray

    ray.init(address=address, include_dashboard=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # either one stops it cleanly, the local Ray included
        signal.signal(signum, lambda *_: stop.set())
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if min_replicas is not None:
        plan = Replicas(fixed=None, low=min_replicas, high=max_replicas, gpus=gpus > 0)
    else:
        plan = Replicas(fixed=replicas or gpus or 1, gpus=gpus > 0)
    serve.start(http_options={"host": config.host, "port": config.port})
    what = "one GPU" if plan.gpus else f"{plan.cpus_per_replica} CPU"
    count = plan.fixed if plan.fixed is not None else f"{plan.low} to {plan.high}"
    console.print(f"deploying keypaint on Ray: {count} Painter replicas, {what} each ...")
    serve.run(build_app(config, plan), name=APP_NAME, route_prefix="/", blocking=False)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    console.print(f"keypaint is serving http://{shown}:{config.port}/ on Ray (Ctrl-C stops it)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        console.print("stopping keypaint on Ray ...")
        serve.delete(APP_NAME)
        serve.shutdown()
        ray.shutdown()
