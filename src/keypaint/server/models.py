"""`ModelHost`: the one loaded model the worker paints with, and switching it by name.

Holding the model is the device's lock: a switch waits until the running job is done, so a job never
sees its model change under it (the order A1111's /sdapi/v1/options gives too). A model named by a request
is checked (`models.preflight`: pickles, headers, size) when the request arrives, before it is queued.
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
from keypaint.models.checkpoint_files import PickleRefused
from keypaint.models.preflight import check_model
from keypaint.models.registry import BUILTIN_ALIASES, BUILTIN_NAME, list_models

PainterFactory = Callable[[str | None], Painter]

_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# What a client is told about a pickle: only the server's operator can allow one.
SERVER_PICKLE_REMEDY = ("this server loads pickles only when started with keypaint serve --allow-pickle "
                        "(or once its operator converts the file: "
                        "keypaint export {name} FOLDER --allow-pickle)")


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

    def __init__(self, factory: PainterFactory, painter: Painter, *, home: Path | None = None,
                 allow_pickle: bool = False, max_model_bytes: int | None = None) -> None:
        self._factory = factory
        self._home = home
        self._allow_pickle = allow_pickle
        self._max_model_bytes = max_model_bytes
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
        """The name of the available model `text` means, checked for loading; `ModelError` if none or if
        it cannot be loaded (the same message for /sdapi/v1/options and a request's own model).

        A1111 titles, file names and bare names all match by name; a path must be the listed file itself,
        so "/any/dir/x.safetensors" never runs another folder's x."""
        info = self._find(text)
        if info.name != self._painter.model.name:
            try:
                check_model(Path(info.filename) if info.name != BUILTIN_NAME else None, home=self._home,
                            allow_pickle=self._allow_pickle, max_bytes=self._max_model_bytes)
            except PickleRefused as exc:
                raise exc.reworded(SERVER_PICKLE_REMEDY) from None
        return info.name

    def _find(self, text: str) -> ModelInfo:
        key = model_key(text)
        if key in BUILTIN_ALIASES:
            key = BUILTIN_NAME
        given = Path(_HASH_SUFFIX.sub("", text.strip())).expanduser()
        available = self.available()
        for info in available:
            if key not in (info.name, model_key(info.filename)):
                continue
            if given.parent == Path(".") or given.resolve() == Path(info.filename).resolve():
                return info
        known = ", ".join(m.name for m in available)
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
        try:
            painter = self._factory(None if name == BUILTIN_NAME else name)
        except PickleRefused as exc:
            raise exc.reworded(SERVER_PICKLE_REMEDY) from None
        self._painter = painter  # the old model is dropped only once the new one has loaded
