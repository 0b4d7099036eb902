"""Removing what killed saves left behind: `.keypaint-*.tmp` files and `.keypaint-NNNNN.claim` markers.

`save_image` writes a picture to a temporary file, syncs it and links it to its final name within
seconds; a process killed in between leaves the temporary file (and perhaps its number's claim) behind.
Only ones untouched for `STALE_AFTER_S` are removed, so a file another live process is writing right now
is never taken from it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STALE_AFTER_S = 15 * 60.0  # no save takes more than seconds between writing and naming its file
_PREFIX = ".keypaint-"
_SUFFIXES = (".tmp", ".claim")


def remove_stale_leftovers(base: Path, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove stale save leftovers in `base` and its day folders; the paths removed (errors are skipped)."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_s
    folders = [base, *(p for p in _entries(base) if p.is_dir() and not p.is_symlink())]
    for folder in folders:
        for path in _entries(folder):
            if not (path.name.startswith(_PREFIX) and path.name.endswith(_SUFFIXES)):
                continue
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                continue  # gone already (another process cleaned it) or not ours to remove
    return removed


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []
