"""Shared fixtures: tiny models saved as diffusers folders and original-layout single files, offline."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_pipeline

from .ldm_layout import save_ldm


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a network connection fails the test (loading must be fully offline)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@dataclass(frozen=True)
class TinyFiles:
    kind: ModelKind
    inpainting: bool
    pipe: StableDiffusionPipeline | StableDiffusionXLPipeline
    folder: Path  # diffusers save_pretrained folder (also the config_dir for the single file)
    single: Path  # original-layout .safetensors


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[ModelKind, bool], TinyFiles]:
    """Build (once per session) a tiny model of a kind and save it both ways."""
    made: dict[tuple[ModelKind, bool], TinyFiles] = {}

    def make(kind: ModelKind, inpainting: bool = False) -> TinyFiles:
        if (kind, inpainting) not in made:
            root = tmp_path_factory.mktemp(f"tiny-{kind.value}-{int(inpainting)}")
            pipe = tiny_pipeline(kind, inpainting=inpainting)
            pipe.save_pretrained(root / "folder")
            single = save_ldm(pipe, kind, root / f"tiny-{kind.value}.safetensors")
            made[kind, inpainting] = TinyFiles(kind, inpainting, pipe, root / "folder", single)
        return made[kind, inpainting]

    return make


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KEYPAINT_HOME with a models folder."""
    path = tmp_path / "home"
    (path / "models").mkdir(parents=True)
    monkeypatch.setenv("KEYPAINT_HOME", str(path))
    return path
