"""Finding, checking and loading models: the built-in model, diffusers folders and single-file checkpoints."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Public names, imported on first use so that `import keypaint.models.loaded` stays light.
_EXPORTS = {
    "LoadedModel": "keypaint.models.loaded",
    "ModelKind": "keypaint.models.loaded",
    "load_model": "keypaint.models.loader",
    "list_models": "keypaint.models.registry",
    "keypaint_home": "keypaint.models.registry",
    "ModelEntry": "keypaint.models.registry",
    "file_sha256": "keypaint.models.hashing",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
