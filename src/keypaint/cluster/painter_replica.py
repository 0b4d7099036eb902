"""`PainterReplica`: one Painter deployment replica of `keypaint serve --ray` (one GPU, or some CPUs).

The ingress asks it to run a job by id; the replica claims that job in the shared store (so a job asked of
two replicas runs once), runs it through the server's own `Worker` (model switching, progress, cancels,
saving into the shared output folder) and answers with what a synchronous A1111 client needs. Its store
beats for it: if the replica dies mid-job, another one runs the job once more (server.pg_job_store). The
running job's progress and previews go into the database (server.pg_progress), where the ingress reads them.
"""

from __future__ import annotations

from typing import Any

from keypaint.server.app import default_factory
from keypaint.server.config import ServerConfig
from keypaint.server.models import ModelHost
from keypaint.server.pg_progress import ProgressBoard
from keypaint.server.stores import Store, open_store
from keypaint.server.worker import Worker


class ReplicaWorker(Worker):
    """The server's worker, also writing its running job's progress to the board (rate-limited there)."""

    def __init__(self, store: Store, host: ModelHost, config: ServerConfig, board: ProgressBoard) -> None:
        super().__init__(store, host, config)
        self.board = board

    def _bump(self) -> None:
        super()._bump()
        progress = self.progress
        if progress is not None and progress.steps:
            self.board.publish(progress)


class PainterReplica:
    def __init__(self, config: ServerConfig, cpu_threads: int | None = None) -> None:
        if cpu_threads is not None:
            import torch

            torch.set_num_threads(cpu_threads)  # replicas sharing a machine's cores do not fight over them
        factory = default_factory(config)
        self.host = ModelHost(factory, factory(config.model), home=config.home,
                              allow_pickle=config.allow_pickle, max_model_bytes=config.max_model_bytes)
        self.store = open_store(config)
        assert config.db_url is not None  # --ray's jobs are in PostgreSQL
        self.board = ProgressBoard(config.db_url)
        self.worker = ReplicaWorker(self.store, self.host, config, self.board)  # the ingress says what to run

    def run(self, job_id: str) -> dict[str, Any]:
        """Run job `job_id` if it is still queued; its outcome, or {"status": "taken"}."""
        job = self.store.claim_id(job_id, self.store.owner)
        if job is None:
            return {"status": "taken"}
        try:
            outcome = self.worker.run_to_outcome(job)
        finally:
            self.board.forget(job_id)
        return {"status": outcome.status, "error": outcome.error, "images": outcome.images,
                "infotexts": outcome.infotexts, "paths": outcome.paths, "warnings": outcome.warnings}

    def model(self) -> str:
        """The model this replica holds now (models switch per replica, as jobs ask)."""
        return self.host.current.model.name

    def __del__(self) -> None:
        self.board.close()
        self.store.close()
