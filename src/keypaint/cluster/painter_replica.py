"""`PainterReplica`: one Painter deployment replica of `keypaint serve --ray` (one GPU, or some CPUs).

The ingress asks it to run a job by id; the replica claims that job in the shared store (so a job asked of
two replicas runs once), runs it through the server's own `Worker` (model switching, progress, cancels,
saving into the shared output folder) and answers with what a synchronous A1111 client needs. Its store
beats for it: if the replica dies mid-job, another one runs the job once more (server.pg_job_store).
"""

from __future__ import annotations

from typing import Any

from keypaint.server.app import default_factory
from keypaint.server.config import ServerConfig
from keypaint.server.models import ModelHost
from keypaint.server.stores import open_store
from keypaint.server.worker import Worker


class PainterReplica:
    def __init__(self, config: ServerConfig, cpu_threads: int | None = None) -> None:
        if cpu_threads is not None:
            import torch

            torch.set_num_threads(cpu_threads)  # replicas sharing a machine's cores do not fight over them
        factory = default_factory(config)
        self.host = ModelHost(factory, factory(config.model), home=config.home,
                              allow_pickle=config.allow_pickle, max_model_bytes=config.max_model_bytes)
        self.store = open_store(config)
        self.worker = Worker(self.store, self.host, config)  # not started: the ingress says what to run

    def run(self, job_id: str) -> dict[str, Any]:
        """Run job `job_id` if it is still queued; its outcome, or {"status": "taken"}."""
        job = self.store.claim_id(job_id, self.store.owner)
        if job is None:
            return {"status": "taken"}
        outcome = self.worker.run_to_outcome(job)
        return {"status": outcome.status, "error": outcome.error, "images": outcome.images,
                "infotexts": outcome.infotexts, "paths": outcome.paths, "warnings": outcome.warnings}

    def model(self) -> str:
        """The model this replica holds now (models switch per replica, as jobs ask)."""
        return self.host.current.model.name

    def __del__(self) -> None:
        self.store.close()
