"""`ProgressBoard`: running jobs' live progress and previews in PostgreSQL, for `keypaint serve --ray`.

A Painter replica paints in its own process, so the ingress (which answers `/sdapi/v1/progress` and the job
API's progress and preview events) cannot see its `Progress`. The replica writes it into the `progress`
table at most every `every_s` seconds (and at each batch's last step); the ingress reads the rows of the
running jobs each time it looks at the queue. One row per job, replaced in place; rows of jobs finished an
hour ago are removed.
"""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg.rows import dict_row

from keypaint.server.pg_job_store import _SCHEMA_LOCK
from keypaint.server.worker import Progress

_SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    job_id TEXT PRIMARY KEY, started DOUBLE PRECISION NOT NULL, step INTEGER NOT NULL, steps INTEGER NOT NULL,
    batch INTEGER NOT NULL, batches INTEGER NOT NULL, preview BYTEA, preview_step INTEGER NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
"""
KEEP_S = 3600.0  # a finished job's last progress stays this long (its event stream may still ask)


class ProgressBoard:
    """The `progress` table of one database; thread-safe; its errors never reach a job."""

    def __init__(self, url: str, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._db.execute(_SCHEMA)
        self._last: dict[str, tuple[float, int]] = {}  # job -> (when written, preview step written)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def publish(self, progress: Progress) -> bool:
        """Write `progress` unless its job's row was written less than `every_s` ago (a batch's last step
        and a new preview after that pause are always written); whether it was written."""
        now = time.monotonic()
        written, preview_step = self._last.get(progress.job_id, (-1e9, -1))
        batch_end = progress.steps > 0 and progress.step == progress.steps
        if now - written < self.every_s and not batch_end:
            return False
        preview = progress.preview if progress.preview_step != preview_step else None
        try:
            with self._lock:
                if progress.job_id not in self._last:
                    self._db.execute("DELETE FROM progress WHERE updated < %s", (time.time() - KEEP_S,))
                self._db.execute(
                    "INSERT INTO progress (job_id, started, step, steps, batch, batches, preview,"
                    " preview_step, updated) VALUES (%(job_id)s, %(started)s, %(step)s, %(steps)s,"
                    " %(batch)s, %(batches)s, %(preview)s, %(preview_step)s, %(now)s)"
                    " ON CONFLICT (job_id) DO UPDATE SET started=EXCLUDED.started, step=EXCLUDED.step,"
                    " steps=EXCLUDED.steps, batch=EXCLUDED.batch, batches=EXCLUDED.batches,"
                    " preview=COALESCE(EXCLUDED.preview, progress.preview),"
                    " preview_step=CASE WHEN EXCLUDED.preview IS NULL THEN progress.preview_step"
                    " ELSE EXCLUDED.preview_step END, updated=EXCLUDED.updated",
                    {"job_id": progress.job_id, "started": progress.started, "step": progress.step,
                     "steps": progress.steps, "batch": progress.batch, "batches": progress.batches,
                     "preview": preview, "preview_step": progress.preview_step, "now": time.time()},
                )
        except psycopg.Error:  # the database is away for a moment: progress is a nicety, the job goes on
            return False
        self._last[progress.job_id] = (now, progress.preview_step if preview is not None else preview_step)
        return True

    def forget(self, job_id: str) -> None:
        """This process is done writing `job_id`'s progress (the row stays for readers)."""
        self._last.pop(job_id, None)

    def running(self) -> dict[str, Progress]:
        """The progress of every running job, by job id (empty while the database is away)."""
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT p.* FROM progress p JOIN jobs j ON j.id = p.job_id WHERE j.status = 'running' "
                    "ORDER BY p.updated"
                ).fetchall()
        except psycopg.Error:
            return {}
        return {row["job_id"]: Progress(row["job_id"], row["started"], step=row["step"], steps=row["steps"],
                                        batch=row["batch"], batches=row["batches"],
                                        preview=bytes(row["preview"]) if row["preview"] is not None else None,
                                        preview_step=row["preview_step"]) for row in rows}
