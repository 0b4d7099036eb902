"""`ModelHost`: the one loaded model the worker paints with, and switching it by name.

Holding the model is the device's lock: a switch waits until the running job is done, so a job never
sees its model change under it (the order A1111's /sdapi/v1/options gives too).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from keypaint.core.painter import Painter
from keypaint.errors import ModelError
from keypaint.models.registry import BUILTIN_ALIASES, BUILTIN_NAME, list_models

PainterFactory = Callable[[str | None], Painter]

_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelInfo:
    """A model as A1111's /sdapi/v1/sd-models lists it."""

    name: str
    filename: str
    sha256: str | None

    @property
    def title(self) -> str:
        short = f" [{self.sha256[:10]}]" if self.sha256 else ""
        return f"{Path(self.filename).name}{short}"


def model_key(text: str) -> str:
    """What a client's checkpoint name means: A1111 titles ("x.safetensors [abc123def0]"), file names and
    bare names all reduce to the bare name."""
    text = _HASH_SUFFIX.sub("", text.strip())
    text = Path(text).name
    for suffix in _MODEL_SUFFIXES:
        if text.lower().endswith(suffix):
            return text[: -len(suffix)]
    return text


class ModelHost:
    """Loads models through `factory` (by default `Painter.load`) and keeps the current one."""

    def __init__(self, factory: PainterFactory, painter: Painter, *, home: Path | None = None) -> None:
        self._factory = factory
        self._home = home
        self._painter = painter
        self._default = painter.model.name
        self._lock = threading.RLock()

    @property
    def current(self) -> Painter:
        return self._painter

    @property
    def default_name(self) -> str:
        """The model jobs use unless they name one (A1111's sd_model_checkpoint option)."""
        return self._default

    def available(self) -> list[ModelInfo]:
        """The models in the model folder (and the built-in one), plus the loaded one if it is not there."""
        found = [ModelInfo(e.name, str(e.path or e.name), None) for e in list_models(self._home)]
        loaded = self._painter.model
        infos = [ModelInfo(m.name, m.filename, loaded.sha256 if m.name == loaded.name else None)
                 for m in found]
        if all(m.name != loaded.name for m in infos):
            infos.insert(0, ModelInfo(loaded.name, str(loaded.source or loaded.name), loaded.sha256))
        return infos

    def resolve(self, text: str) -> str:
        """The name of the available model `text` means; `ModelError` if none."""
        key = model_key(text)
        if key in BUILTIN_ALIASES:
            key = BUILTIN_NAME
        for info in self.available():
            if key in (info.name, model_key(info.filename)):
                return info.name
        known = ", ".join(m.name for m in self.available())
        raise ModelError(f"unknown model {text!r}; available: {known}")

    @contextmanager
    def use(self, name: str | None) -> Iterator[Painter]:
        """Hold the device with the model `name` (None: the default) loaded; loads it if needed."""
        with self._lock:
            wanted = name or self._default
            if wanted != self._painter.model.name:
                self._load(wanted)
            yield self._painter

    def switch(self, text: str) -> str:
        """Make `text`'s model the default and load it now (waits for the running job)."""
        name = self.resolve(text)
        with self._lock:
            if name != self._painter.model.name:
                self._load(name)
            self._default = name
        return name

    def _load(self, name: str) -> None:
        painter = self._factory(None if name == BUILTIN_NAME else name)
        self._painter = painter  # the old model is dropped only once the new one has loaded
