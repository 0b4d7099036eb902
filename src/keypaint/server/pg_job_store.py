"""`PgJobStore`: the jobs and the gallery in PostgreSQL (psycopg 3), shared by many server processes.

Any process runs any job: `claim` takes the oldest queued one with `SELECT ... FOR UPDATE SKIP LOCKED`, so
two runners never get the same job. Each process writes its heartbeat into `runners` every `lease_s / 3`
seconds from a thread of its own and, on the same beat, settles the jobs of runners that stopped beating:
a job is queued again once (at its old place), and marked failed when its second runner dies too. A
synchronous A1111 request stays with the process whose client waits for it (`owner` while queued) and is
marked failed when that process is gone. Opening the store changes no job, so a restarted process loses
nothing. Times are the database's clock, so the machines' clocks need not agree.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from keypaint.server.job_store import PINNED, ImageRecord, JobKind, JobRecord, JobStatus, QueueFull

MAX_ATTEMPTS = 2  # a job whose runner dies is run once more elsewhere, then marked failed
_SCHEMA_LOCK = 7_211_001  # advisory lock ids: creating the schema, adding a job (the queue bound)
_QUEUE_LOCK = 7_211_002
_NOW = "extract(epoch from clock_timestamp())"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, status TEXT NOT NULL,
    spec TEXT NOT NULL, init_image BYTEA, mask BYTEA, created DOUBLE PRECISION NOT NULL,
    started DOUBLE PRECISION, finished DOUBLE PRECISION, error TEXT, image_ids TEXT NOT NULL DEFAULT '[]',
    info TEXT,
    owner TEXT,                                   -- the runner (queued sdapi: its client's process)
    attempts INTEGER NOT NULL DEFAULT 0,          -- how many runners have taken it
    cancel BOOLEAN NOT NULL DEFAULT FALSE         -- asked to stop while running elsewhere
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS images (
    id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL, path TEXT NOT NULL, seed BIGINT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, infotext TEXT NOT NULL, metadata TEXT NOT NULL,
    spec TEXT NOT NULL, created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS images_job ON images (job_id);
CREATE TABLE IF NOT EXISTS runners (owner TEXT PRIMARY KEY, seen DOUBLE PRECISION NOT NULL);
"""

_LIGHT_COLUMNS = "seq, id, kind, status, spec, created, started, finished, error, image_ids, info"


class PgJobStore:
    """The `Store` over one PostgreSQL database; thread-safe (one connection and lock for requests, one
    connection for the heartbeat)."""

    shared = True
    poll_s = 0.5

    def __init__(self, url: str, *, owner: str | None = None, lease_s: float = 30.0) -> None:
        self.url = url
        # host and pid first: an operator (or a test) can tell which process runs a job
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.lease_s = lease_s
        self.recovered = 0
        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._db.execute(_SCHEMA)
        self._stop = threading.Event()
        self._beat_db = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        self.beat()
        self._beat = threading.Thread(target=self._beating, name="keypaint-heartbeat", daemon=True)
        self._beat.start()

    def close(self) -> None:
        self._stop.set()
        self._beat.join(10)
        with self._lock:
            self._db.close()
        self._beat_db.close()

    # --- liveness ---------------------------------------------------------------------------------------
    def _beating(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.beat()
            except psycopg.Error:  # the database is away for a moment: the next beat tries again
                continue

    def beat(self) -> int:
        """Say this runner is alive, and settle the jobs of runners that are not; how many were settled."""
        db = self._beat_db
        db.execute(f"INSERT INTO runners (owner, seen) VALUES (%s, {_NOW}) "
                   "ON CONFLICT (owner) DO UPDATE SET seen=EXCLUDED.seen", (self.owner,))
        dead = f"(SELECT owner FROM runners WHERE seen < {_NOW} - %(lease)s)"
        args = {"lease": self.lease_s, "max": MAX_ATTEMPTS, "now": time.time()}
        retried = db.execute(
            "UPDATE jobs SET status='queued', owner=NULL, started=NULL WHERE status='running' AND kind='job' "
            f"AND attempts < %(max)s AND owner IN {dead}",
            args,
        ).rowcount
        failed = db.execute(
            "UPDATE jobs SET status='failed', finished=%(now)s, init_image=NULL, mask=NULL, error=CASE "
            "WHEN kind='job' THEN 'the replica running this job stopped, twice' "
            "ELSE 'the server holding this request stopped' END "
            f"WHERE status IN ('running', 'queued') AND owner IN {dead}", args,
        ).rowcount
        self.recovered += retried + failed
        return retried + failed

    # --- jobs -------------------------------------------------------------------------------------------
    def add_job(self, kind: JobKind, spec: dict[str, Any], *, init_image: bytes | None = None,
                mask: bytes | None = None, max_queue: int, job_id: str | None = None) -> JobRecord:
        """Queue a job at the end, or raise `QueueFull` when `max_queue` jobs are already waiting."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        owner = self.owner if kind in PINNED else None  # its client waits here, or its pictures are here
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_QUEUE_LOCK,))
            queued = self._db.execute("SELECT COUNT(*) AS n FROM jobs WHERE status='queued'").fetchone()
            assert queued is not None
            if queued["n"] >= max_queue:
                raise QueueFull(queued["n"])
            row = self._db.execute(
                "INSERT INTO jobs (id, kind, status, spec, init_image, mask, created, owner) "
                "VALUES (%s, %s, 'queued', %s, %s, %s, %s, %s) RETURNING seq",
                (job_id, kind, json.dumps(spec), init_image, mask, now, owner),
            ).fetchone()
        assert row is not None
        return JobRecord(job_id, int(row["seq"]), kind, "queued", spec, now, init_image=init_image, mask=mask)

    def _one(self, query: str, args: Any = ()) -> dict[str, Any] | None:
        with self._lock:
            return self._db.execute(query, args).fetchone()

    def get_job(self, job_id: str, *, with_images: bool = False) -> JobRecord | None:
        columns = "*" if with_images else _LIGHT_COLUMNS
        row = self._one(f"SELECT {columns} FROM jobs WHERE id=%s", (job_id,))
        return _job(row) if row else None

    def list_jobs(self, limit: int = 50, status: JobStatus | None = None) -> list[JobRecord]:
        where, args = ("WHERE status=%s", (status,)) if status is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT {_LIGHT_COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT %s",
                                    (*args, limit)).fetchall()
        return [_job(row) for row in rows]

    def claim(self, owner: str) -> JobRecord | None:
        """The oldest queued job this runner may take, marked running as its own; None if there is none.

        SKIP LOCKED: a job another runner is claiming at this moment is passed over, never taken twice."""
        row = self._one(
            "UPDATE jobs SET status='running', owner=%(owner)s, started=%(now)s, attempts=attempts+1 "
            "WHERE seq=(SELECT seq FROM jobs WHERE status='queued' AND (kind='job' OR owner=%(owner)s) "
            "ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING *",
            {"owner": owner, "now": time.time()},
        )
        return _job(row) if row else None

    def claim_id(self, job_id: str, owner: str) -> JobRecord | None:
        """Job `job_id` marked running as `owner`'s if it is still queued, else None."""
        row = self._one(
            "UPDATE jobs SET status='running', owner=%s, started=%s, attempts=attempts+1 "
            "WHERE id=%s AND status='queued' RETURNING *", (owner, time.time(), job_id),
        )
        return _job(row) if row else None

    def queued_count(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM jobs WHERE status='queued'")
        return int(row["n"]) if row else 0

    def position(self, job: JobRecord) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM jobs WHERE status='queued' AND seq<%s", (job.seq,))
        return int(row["n"]) if row else 0

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               image_ids: list[int] | None = None, info: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status=%s, finished=%s, error=%s, image_ids=%s, info=%s, init_image=NULL, "
                "mask=NULL WHERE id=%s",
                (status, time.time(), error, json.dumps(image_ids or []),
                 json.dumps(info) if info is not None else None, job_id),
            )

    def cancel_queued(self, job_id: str) -> bool:
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET status='cancelled', finished=%s, error='cancelled', init_image=NULL, "
                "mask=NULL WHERE id=%s AND status='queued'", (time.time(), job_id),
            ).rowcount
        return changed == 1

    def request_cancel(self, job_id: str) -> bool:
        """Ask the runner of a running job to stop it at its next step (it reads `cancel_requested`)."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE jobs SET cancel=TRUE WHERE id=%s AND status='running'", (job_id,)
            ).rowcount
        return changed == 1

    def cancel_requested(self, job_id: str) -> bool:
        row = self._one("SELECT cancel FROM jobs WHERE id=%s", (job_id,))
        return bool(row and row["cancel"])

    def recent_durations(self, limit: int = 20) -> list[float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT finished - started AS d FROM jobs WHERE status='succeeded' AND started IS NOT NULL "
                "ORDER BY seq DESC LIMIT %s", (limit,),
            ).fetchall()
        return [float(row["d"]) for row in rows if row["d"] is not None]

    # --- gallery ----------------------------------------------------------------------------------------
    def add_image(self, job_id: str, path: str, *, seed: int, width: int, height: int, infotext: str,
                  metadata: dict[str, Any], spec: dict[str, Any]) -> int:
        row = self._one(
            "INSERT INTO images (job_id, path, seed, width, height, infotext, metadata, spec, created) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (job_id, path, seed, width, height, infotext, json.dumps(metadata), json.dumps(spec),
             time.time()),
        )
        assert row is not None
        return int(row["id"])

    def images(self, *, offset: int = 0, limit: int = 24, job_id: str | None = None
               ) -> tuple[list[ImageRecord], int]:
        where, args = ("WHERE job_id=%s", (job_id,)) if job_id else ("", ())
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) AS n FROM images {where}", args).fetchone()
            rows = self._db.execute(f"SELECT * FROM images {where} ORDER BY id DESC LIMIT %s OFFSET %s",
                                    (*args, limit, offset)).fetchall()
        return [_image(row) for row in rows], int(total["n"]) if total else 0

    def get_image(self, image_id: int) -> ImageRecord | None:
        row = self._one("SELECT * FROM images WHERE id=%s", (image_id,))
        return _image(row) if row else None


def _job(row: dict[str, Any]) -> JobRecord:
    return JobRecord(
        id=row["id"], seq=row["seq"], kind=row["kind"], status=row["status"], spec=json.loads(row["spec"]),
        created=row["created"], started=row["started"], finished=row["finished"], error=row["error"],
        image_ids=json.loads(row["image_ids"]), info=json.loads(row["info"]) if row["info"] else None,
        init_image=bytes(row["init_image"]) if row.get("init_image") is not None else None,
        mask=bytes(row["mask"]) if row.get("mask") is not None else None,
    )


def _image(row: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=row["id"], job_id=row["job_id"], path=row["path"], seed=row["seed"], width=row["width"],
        height=row["height"], infotext=row["infotext"], metadata=json.loads(row["metadata"]),
        spec=json.loads(row["spec"]), created=row["created"],
    )
