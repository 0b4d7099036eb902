"""SHA-256 of model files, cached because Stable Diffusion checkpoints are gigabytes.

The cache (`<home>/cache/hashes.json`) is keyed by absolute path, size and mtime in nanoseconds, so a file
that is replaced or touched is hashed again. A1111's "Model hash" is the first 10 hex digits of this value.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from keypaint.models.registry import keypaint_home

_CHUNK = 8 * 1024 * 1024


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _read_cache(cache: Path) -> dict[str, str]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_sha256(path: Path, *, home: Path | None = None) -> str:
    """Hex SHA-256 of `path`, from the cache when the file's path, size and mtime are unchanged."""
    path = Path(path)
    cache = (home or keypaint_home()) / "cache" / "hashes.json"
    key = _cache_key(path)
    entries = _read_cache(cache)
    if key in entries:
        return entries[key]

    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()

    entries = _read_cache(cache)  # re-read: another process may have added entries meanwhile
    entries[key] = value
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix="hashes.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, cache)  # atomic: readers never see a half-written cache
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return value
