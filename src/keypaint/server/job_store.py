"""The server's memory: jobs and the gallery in one SQLite file (stdlib `sqlite3`), pictures on disk.

A job's request is stored as JSON plus its init image and mask as bytes, so a queued job survives a
restart exactly as it was sent. Opening the store after a stop settles what the stop interrupted: the job
that was running is marked failed (never re-run, so a job that kills the server cannot loop), and queued
synchronous A1111 requests, whose clients are gone with the old process, are marked failed too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# "sdapi": a synchronous A1111 request, its client waits for it; "finetune": POST /api/finetune's run
# (server.finetune_api), its pictures in this server's home
JobKind = Literal["job", "sdapi", "finetune"]
PINNED: tuple[JobKind, ...] = ("sdapi", "finetune")  # run only by the process that queued them
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- run order
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,                     -- JSON: the generation request, images left out
    init_image BLOB,
    mask BLOB,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT,
    image_ids TEXT NOT NULL DEFAULT '[]',   -- JSON list of gallery ids this job saved
    info TEXT                               -- JSON: what the run resolved (seeds, infotexts)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    path TEXT NOT NULL,                     -- relative to the output folder, '/'-separated
    seed INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    infotext TEXT NOT NULL,
    metadata TEXT NOT NULL,                 -- JSON: keypaint's reproduction metadata
    spec TEXT NOT NULL,                     -- JSON: the job's request, for "use these settings again"
    created REAL NOT NULL
);
"""


class QueueFull(Exception):
    """The bounded queue has no room; `queued` jobs are waiting."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"the queue is full ({queued} jobs waiting)")
        self.queued = queued


@dataclass
class JobRecord:
    id: str
    seq: int
    kind: JobKind
    status: JobStatus
    spec: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    image_ids: list[int] = field(default_factory=list)
    info: dict[str, Any] | None = None
    init_image: bytes | None = field(default=None, repr=False)
    mask: bytes | None = field(default=None, repr=False)


@dataclass
class ImageRecord:
    id: int
    job_id: str
    path: str
    seed: int
    width: int
    height: int
    infotext: str
    metadata: dict[str, Any]
    spec: dict[str, Any]
    created: float


class JobStore:
    """Thread-safe access to the server's SQLite file (one connection, one lock: writes are tiny).

    One process runs its jobs: nothing else claims them, so `claim` needs no owner's liveness."""

    shared = False
    poll_s = 5.0
    owner = "this process"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.recovered = self._recover()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _recover(self) -> int:
        """Settle what the last stop interrupted; returns how many jobs were marked failed."""
        now = time.time()
        with self._lock:
            running = self._db.execute(
                "UPDATE jobs SET status='failed', finished=?, error=? WHERE status='running'",
                (now, "the server stopped while this job was running"),
            ).rowcount
            orphans = self._db.execute(
                "UPDATE jobs SET status='failed', finished=?, error=? WHERE status='queued' AND kind='sdapi'",
                (now, "the server stopped before this request ran; its client was disconnected"),
            ).rowcount
        return running + orphans

    # --- jobs -------------------------------------------------------------------------------------------
    def add_job(self, kind: JobKind, spec: dict[str, Any], *, init_image: bytes | None = None,
                mask: bytes | None = None, max_queue: int, job_id: str | None = None) -> JobRecord:
        """Queue a job at the end, or raise `QueueFull` when `max_queue` jobs are already waiting."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                queued = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
                if queued >= max_queue:
                    raise QueueFull(queued)
                cursor = self._db.execute(
                    "INSERT INTO jobs (id, kind, status, spec, init_image, mask, created) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                    (job_id, kind, json.dumps(spec), init_image, mask, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return JobRecord(job_id, int(cursor.lastrowid or 0), kind, "queued", spec, now,
                         init_image=init_image, mask=mask)

    def get_job(self, job_id: str, *, with_images: bool = False) -> JobRecord | None:
        columns = "*" if with_images else _LIGHT_COLUMNS
        with self._lock:
            row = self._db.execute(f"SELECT {columns} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self, limit: int = 50, status: JobStatus | None = None) -> list[JobRecord]:
        query = f"SELECT {_LIGHT_COLUMNS} FROM jobs"
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status=?"
            args = (status,)
        with self._lock:
            rows = self._db.execute(f"{query} ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_job(row) for row in rows]

    def next_queued(self) -> JobRecord | None:
        """The oldest queued job, with its images (what the worker runs next)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE status='queued' ORDER BY seq LIMIT 1"
            ).fetchone()
        return _job(row) if row else None

    def claim(self, owner: str) -> JobRecord | None:
        """The oldest queued job, marked running (`owner` is for shared stores: one process here)."""
        with self._lock:
            row = self._db.execute(
                "UPDATE jobs SET status='running', started=? WHERE seq=(SELECT seq FROM jobs "
                "WHERE status='queued' ORDER BY seq LIMIT 1) RETURNING *", (time.time(),),
            ).fetchone()
        return _job(row) if row else None

    def claim_id(self, job_id: str, owner: str) -> JobRecord | None:
        """Job `job_id` marked running if it is still queued, else None."""
        with self._lock:
            row = self._db.execute(
                "UPDATE jobs SET status='running', started=? WHERE id=? AND status='queued' RETURNING *",
                (time.time(), job_id),
            ).fetchone()
        return _job(row) if row else None

    def request_cancel(self, job_id: str) -> bool:
        """Jobs run in this process only, where the worker stops them itself: nothing to ask elsewhere."""
        return False

    def cancel_requested(self, job_id: str) -> bool:
        return False

    def queued_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0])

    def position(self, job: JobRecord) -> int:
        """0-based place of a queued job in the queue."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status='queued' AND seq<?", (job.seq,)
            ).fetchone()[0])

    def start(self, job_id: str) -> bool:
        """Mark a queued job running; False if it was cancelled meanwhile."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET status='running', started=? WHERE id=? AND status='queued'",
                (time.time(), job_id),
            ).rowcount
        return changed == 1

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               image_ids: list[int] | None = None, info: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status=?, finished=?, error=?, image_ids=?, info=?, init_image=NULL, "
                "mask=NULL WHERE id=?",
                (status, time.time(), error, json.dumps(image_ids or []),
                 json.dumps(info) if info is not None else None, job_id),
            )

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is not queued (any more)."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET status='cancelled', finished=?, error='cancelled', init_image=NULL, "
                "mask=NULL WHERE id=? AND status='queued'",
                (time.time(), job_id),
            ).rowcount
        return changed == 1

    def recent_durations(self, limit: int = 20) -> list[float]:
        """Run times of the last succeeded jobs, for Retry-After and ETA estimates."""
        with self._lock:
            rows = self._db.execute(
                "SELECT finished - started FROM jobs WHERE status='succeeded' AND started IS NOT NULL "
                "ORDER BY seq DESC LIMIT ?", (limit,),
            ).fetchall()
        return [float(row[0]) for row in rows if row[0] is not None]

    # --- gallery ----------------------------------------------------------------------------------------
    def add_image(self, job_id: str, path: str, *, seed: int, width: int, height: int, infotext: str,
                  metadata: dict[str, Any], spec: dict[str, Any]) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO images (job_id, path, seed, width, height, infotext, metadata, spec, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, path, seed, width, height, infotext, json.dumps(metadata), json.dumps(spec),
                 time.time()),
            )
        return int(cursor.lastrowid or 0)

    def images(self, *, offset: int = 0, limit: int = 24, job_id: str | None = None
               ) -> tuple[list[ImageRecord], int]:
        """A page of the gallery, newest first, and the gallery's size."""
        where, args = ("WHERE job_id=?", (job_id,)) if job_id else ("", ())
        with self._lock:
            total = int(self._db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0])
            rows = self._db.execute(
                f"SELECT * FROM images {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset)
            ).fetchall()
        return [_image(row) for row in rows], total

    def get_image(self, image_id: int) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        return _image(row) if row else None


_LIGHT_COLUMNS = "seq, id, kind, status, spec, created, started, finished, error, image_ids, info"


def _job(row: sqlite3.Row) -> JobRecord:
    keys = row.keys()
    return JobRecord(
        id=row["id"], seq=row["seq"], kind=row["kind"], status=row["status"], spec=json.loads(row["spec"]),
        created=row["created"], started=row["started"], finished=row["finished"], error=row["error"],
        image_ids=json.loads(row["image_ids"]), info=json.loads(row["info"]) if row["info"] else None,
        init_image=row["init_image"] if "init_image" in keys else None,
        mask=row["mask"] if "mask" in keys else None,
    )


def _image(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        id=row["id"], job_id=row["job_id"], path=row["path"], seed=row["seed"], width=row["width"],
        height=row["height"], infotext=row["infotext"], metadata=json.loads(row["metadata"]),
        spec=json.loads(row["spec"]), created=row["created"],
    )
