"""`ServerConfig`: everything `keypaint serve` is told on its command line, in one typed place."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from keypaint.core.params import Limits
from keypaint.core.speed.options import SpeedOptions

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# A token or password shorter than this can be guessed by a client that simply keeps asking.
MIN_SECRET_CHARS = 12
FINETUNE_PATH = "/api/finetune"  # the one route whose body is pictures to learn from (max_upload_bytes)


@dataclass(frozen=True)
class ServerConfig:
    """How one keypaint server runs; tests build this directly, the CLI from its options."""

    host: str = "127.0.0.1"  # bind address; anything but loopback needs `auth` or `token`
    port: int = 7860  # A1111's port, so its clients find keypaint where they look
    out: Path = Path("outputs")  # gallery pictures go to OUT/YYYY-MM-DD/, the job database beside them
    db: Path | None = None  # SQLite file; None: OUT/keypaint-server.sqlite3
    model: str | None = None  # model loaded at start (None: the built-in model)
    home: Path | None = None  # $KEYPAINT_HOME (model folder, hash cache)
    device: str = "auto"
    dtype: str = "auto"
    limits: Limits = field(default_factory=Limits)  # the same per-request limits as the CLI
    speed: SpeedOptions = field(default_factory=SpeedOptions)  # how every model loaded here runs (--fast ...)
    max_pixel_steps: int = 1024 * 1024 * 50 * 4  # width x height x steps x pictures of one request
    max_queue: int = 32  # queued (not yet running) jobs; more gets 429
    max_body_bytes: int = 24 * 1024 * 1024  # one request body; more gets 413 before it is read
    max_image_pixels: int = 4096 * 4096  # an uploaded init image or mask, checked before it is decoded
    auth: tuple[str, str] | None = None  # HTTP Basic user and password
    token: str | None = None  # bearer token (or ?token= once on the page, which sets a cookie)
    allowed_origins: tuple[str, ...] = ()  # extra origins allowed to change state (besides our own)
    preview_interval_s: float = 0.25  # at most one preview image per this many seconds
    allow_pickle: bool = False  # load .ckpt/.pt/.bin models (weights only), at start and per request
    max_model_bytes: int | None = None  # largest model file or folder; None: models.preflight's default
    # jobs in PostgreSQL (server.pg_job_store) instead of the SQLite file: several processes share them
    db_url: str | None = None  # postgresql://USER@HOST:PORT/DB
    lease_s: float = 30.0  # a runner silent this long is gone: its job runs elsewhere (once)
    out_url: str | None = None  # pictures in this fsspec location (s3://bucket/prefix, ...) instead of OUT
    # POST /api/finetune (server.finetune_api): its own body limit (pictures), steps and pictures per run
    max_upload_bytes: int = 64 * 1024 * 1024
    max_finetune_steps: int = 2000
    max_finetune_pictures: int = 100
    finetune_sample_every: int = 50  # a sample picture (the job's preview) every this many steps; 0: none

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.out / "keypaint-server.sqlite3"

    def body_limit(self, path: str) -> int:
        """The largest request body for `path`: fine-tuning uploads get `max_upload_bytes`."""
        return self.max_upload_bytes if path == FINETUNE_PATH else self.max_body_bytes

    @property
    def secured(self) -> bool:
        return self.auth is not None or self.token is not None

    def check_bind(self) -> None:
        """Refuse to listen beyond this machine without credentials, or with credentials anyone could
        guess (a `ValueError` saying why)."""
        self.check_credentials()
        if not is_loopback(self.host) and not self.secured:
            raise ValueError(
                f"binding {self.host} exposes keypaint to the network: give --auth USER:PASS or --token TOKEN"
            )


    def check_credentials(self) -> None:
        """A blank or short token or password would let anyone in while looking secured: refuse it."""
        if self.token is not None:
            _check_secret("--token (or KEYPAINT_SERVE_TOKEN)", self.token)
            if any(ch.isspace() or not ch.isprintable() for ch in self.token):
                raise ValueError("--token (or KEYPAINT_SERVE_TOKEN) must not contain spaces or control "
                                 "characters: it travels in a header, a cookie or ?token=")
        if self.auth is not None:
            user, password = self.auth
            if not user.strip():
                raise ValueError("--auth: the user name is blank")
            _check_secret("--auth's password", password)


def _check_secret(what: str, secret: str) -> None:
    if not secret.strip():
        raise ValueError(f"{what} is blank")
    if len(secret.strip()) < MIN_SECRET_CHARS:
        raise ValueError(f"{what} is shorter than {MIN_SECRET_CHARS} characters, easy to guess; "
                         "e.g. python -c 'import secrets; print(secrets.token_urlsafe())' makes a good one")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(text: str) -> tuple[str, str]:
    """ "user:pass" -> ("user", "pass"); both parts must be non-empty."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must look like USER:PASSWORD")
    return user, password
