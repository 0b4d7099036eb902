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


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Files written in the test get the permissions a usual umask gives (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
