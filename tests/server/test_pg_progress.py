"""ProgressBoard on a real PostgreSQL (tests/postgres.py): a replica's progress, rate-limited, with its
latest preview, read back for the running jobs only."""

from __future__ import annotations

import time

from keypaint.server.pg_job_store import PgJobStore
from keypaint.server.pg_progress import ProgressBoard
from keypaint.server.worker import Progress


def test_progress_is_rate_limited_and_read_for_running_jobs(pg_url: str) -> None:
    store = PgJobStore(pg_url)
    writer, reader = ProgressBoard(pg_url, every_s=60.0), ProgressBoard(pg_url)
    try:
        job = store.add_job("job", {"prompt": "fox"}, max_queue=8)
        assert store.claim(store.owner) is not None
        progress = Progress(job.id, time.time(), step=1, steps=4, preview=b"png-1", preview_step=1)
        assert writer.publish(progress)
        progress.step, progress.preview, progress.preview_step = 2, b"png-2", 2
        assert not writer.publish(progress)  # within every_s: not written
        [(job_id, read)] = reader.running().items()
        assert job_id == job.id
        assert (read.step, read.steps, read.preview, read.preview_step) == (1, 4, b"png-1", 1)

        progress.step = 4  # a batch's last step is always written; the preview written stays if none is new
        assert writer.publish(progress)
        read = reader.running()[job.id]
        assert (read.step, read.preview, read.preview_step) == (4, b"png-2", 2)
        progress.step, progress.batch = 1, 1
        assert not writer.publish(progress)
        writer.forget(job.id)  # a job run again (another replica, or this one) starts its own pace
        assert writer.publish(progress)
        assert (reader.running()[job.id].step, reader.running()[job.id].batch) == (1, 1)

        store.finish(job.id, "succeeded")
        assert reader.running() == {}  # finished jobs are not running
    finally:
        writer.close()
        reader.close()
        store.close()
