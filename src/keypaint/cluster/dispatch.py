"""`DispatchWorker`: the ingress's worker, which hands queued jobs to Painter replicas instead of painting.

It watches the shared store's queue and asks the Painter deployment to run each queued job it has not
handed out yet (Ray Serve queues the asks and scales the replicas on their number). A job whose replica
died is queued again by the store (its lease) and simply handed out again; one asked of two replicas runs
once (`claim_id`). A restarted ingress finds the queue where the old one left it and hands it out anew.
The replicas' live progress and previews come from the database (server.pg_progress) on the same beat.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from keypaint.server.config import ServerConfig
from keypaint.server.job_store import FINISHED, JobRecord
from keypaint.server.models import ModelHost
from keypaint.server.pg_progress import ProgressBoard
from keypaint.server.stores import Store
from keypaint.server.worker import Progress, Worker

log = logging.getLogger("keypaint.cluster")


class DispatchWorker(Worker):
    trains = False  # a fine-tuning job's pictures are in this process's home: it is refused here
    def __init__(self, store: Store, host: ModelHost, config: ServerConfig, painters: Any) -> None:
        super().__init__(store, host, config)
        self._painters = painters  # the Painter deployment's handle
        self._handed: set[str] = set()  # jobs asked of a replica and not answered yet
        assert config.db_url is not None  # --ray's jobs are in PostgreSQL
        self._board = ProgressBoard(config.db_url)
        self._running: dict[str, Progress] = {}  # the replicas' running jobs, as last read

    def _loop(self) -> None:
        with ThreadPoolExecutor(max_workers=self.config.max_queue + 4, thread_name_prefix="dispatch") as pool:
            while not self._stopping.is_set():
                self._pending.clear()
                for job in reversed(self.store.list_jobs(self.config.max_queue * 2, "queued")):
                    mine = job.kind == "job" or job.id in self._outcomes  # another ingress's client waits
                    if job.id not in self._handed and mine:
                        self._handed.add(job.id)
                        pool.submit(self._hand_out, job)
                self._settle_lost()
                self._follow_progress()
                self._bump()  # jobs change on the replicas: event streams look again
                self._pending.wait(self.store.poll_s)

    def _hand_out(self, job: JobRecord) -> None:
        try:
            answer = self._painters.run.remote(job.id).result()
            outcome = self._outcomes.get(job.id)
            if answer["status"] != "taken" and outcome is not None:
                outcome.images, outcome.infotexts = answer["images"], answer["infotexts"]
                outcome.paths, outcome.warnings = answer["paths"], answer["warnings"]
                self._settle(job.id, answer["status"], error=answer["error"])
        except Exception as exc:  # the replica died: its lease runs out and the store queues the job again
            log.warning("job %s: its replica stopped (%s); the store will hand it out again", job.id, exc)
        finally:
            self._handed.discard(job.id)
            self._pending.set()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._board.close()

    def progress_of(self, job_id: str) -> Progress | None:
        return self._running.get(job_id) or self._recent.get(job_id)

    def _follow_progress(self) -> None:
        """Read the running jobs' progress; `progress` (A1111's one) is the most recently updated job's."""
        running = self._board.running()
        for job_id, last in self._running.items():
            if job_id not in running:  # finished: its last progress (and preview) stays readable a while
                self._recent[job_id] = last
        while len(self._recent) > 64:
            self._recent.popitem(last=False)
        self._running = running
        self.progress = list(running.values())[-1] if running else None

    def _settle_lost(self) -> None:
        """A synchronous request whose job ended without an answer here (its replica died): say so."""
        for job_id, outcome in list(self._outcomes.items()):
            if outcome.done.is_set() or job_id in self._handed:
                continue
            job = self.store.get_job(job_id)
            if job is not None and job.status in FINISHED:
                self._settle(job_id, job.status, error=job.error)
