"""Shared fixtures: tiny seeded real models, offline hub, a private KEYPAINT_HOME per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own $KEYPAINT_HOME so nothing reads or writes the user's real data folder."""
    home = tmp_path_factory.mktemp("keypaint-home")
    monkeypatch.setenv("KEYPAINT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_sd1():
    """A tiny random-weight SD 1.x model (shared: tests must not modify it)."""
    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_model

    return tiny_model(ModelKind.SD1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A PostgreSQL server for the session (tests/postgres.py); skipped, saying why, without the binaries."""
    from tests.postgres import binaries, start_postgres

    found = binaries()
    if found is None:
        pytest.skip("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
    server = start_postgres(found)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database on the session's PostgreSQL, for one test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    return postgres.new_database(name)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Files written in the test get the permissions a usual umask gives (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
