"""A real PostgreSQL for the tests: Debian's server binaries, `initdb` and `pg_ctl` in a temporary folder.

PostgreSQL refuses to run as root, so under root (CI's containers) the server runs as the `postgres` user
the Debian package creates (else `nobody`), owning its own temporary folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def binaries() -> Path | None:
    """The folder with initdb and pg_ctl: Debian's PostgreSQL 15, or whatever version is installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) if not (BIN / "pg_ctl").exists() else []
    if (BIN / "pg_ctl").exists():
        return BIN
    return found[-1].parent if found else None


@dataclass
class Postgres:
    folder: Path
    port: int
    bin: Path
    user: str | None  # run as this user (we are root), else as ourselves

    @property
    def url(self) -> str:
        return f"postgresql://keypaint@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        kwargs = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []
                  } if self.user else {}
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                              **kwargs)  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        data = self.folder / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "keypaint", "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "log"), "-w",
                  "-o", options, "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def start_postgres(bin_dir: Path) -> Postgres:
    user = None
    if os.geteuid() == 0:
        user = "postgres" if _exists("postgres") else "nobody"
    folder = Path(tempfile.mkdtemp(prefix="keypaint-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Postgres(folder, port, bin_dir, user)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
