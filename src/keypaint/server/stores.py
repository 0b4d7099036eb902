"""`Store`: what the server needs from its job store, and `open_store` to pick one from the config.

Two stores keep the same jobs and gallery: `JobStore` (SQLite, one server process, the default) and
`PgJobStore` (PostgreSQL, any number of server processes or Ray replicas sharing one queue). A shared
store hands each job to one runner at a time (`claim`), watches its runners' liveness and gives the job of
a runner that died to another one once before marking it failed.
"""

from __future__ import annotations

from typing import Any, Protocol

from keypaint.server.config import ServerConfig
from keypaint.server.job_store import ImageRecord, JobKind, JobRecord, JobStatus, JobStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Store(Protocol):
    """The job queue and the gallery, whatever keeps them."""

    shared: bool  # other processes run jobs from this store too (poll it; their jobs change under us)
    poll_s: float  # how often an idle runner looks for jobs queued elsewhere
    recovered: int  # jobs an earlier stop left unfinished that opening the store settled
    owner: str  # this process, as the runner of the jobs it claims

    def close(self) -> None: ...
    def add_job(self, kind: JobKind, spec: dict[str, Any], *, init_image: bytes | None = None,
                mask: bytes | None = None, max_queue: int, job_id: str | None = None) -> JobRecord: ...
    def get_job(self, job_id: str, *, with_images: bool = False) -> JobRecord | None: ...
    def list_jobs(self, limit: int = 50, status: JobStatus | None = None) -> list[JobRecord]: ...
    def claim(self, owner: str) -> JobRecord | None: ...
    def claim_id(self, job_id: str, owner: str) -> JobRecord | None: ...
    def queued_count(self) -> int: ...
    def position(self, job: JobRecord) -> int: ...
    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               image_ids: list[int] | None = None, info: dict[str, Any] | None = None) -> None: ...
    def cancel_queued(self, job_id: str) -> bool: ...
    def request_cancel(self, job_id: str) -> bool: ...
    def cancel_requested(self, job_id: str) -> bool: ...
    def recent_durations(self, limit: int = 20) -> list[float]: ...
    def add_image(self, job_id: str, path: str, *, seed: int, width: int, height: int, infotext: str,
                  metadata: dict[str, Any], spec: dict[str, Any]) -> int: ...
    def images(self, *, offset: int = 0, limit: int = 24, job_id: str | None = None
               ) -> tuple[list[ImageRecord], int]: ...
    def get_image(self, image_id: int) -> ImageRecord | None: ...


def is_postgres_url(text: str) -> bool:
    return text.startswith(POSTGRES_SCHEMES)


def open_store(config: ServerConfig) -> Store:
    """The store `config` names: PostgreSQL for a postgresql:// URL, else the SQLite file."""
    if config.db_url is not None:
        from keypaint.server.pg_job_store import PgJobStore

        return PgJobStore(config.db_url, lease_s=config.lease_s)
    return JobStore(config.db_path)
