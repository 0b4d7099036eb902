"""Leftovers of killed saves are removed on start, but only stale ones: never a file being written now."""

from __future__ import annotations

import os
import time
from pathlib import Path

from keypaint.outputs.leftovers import STALE_AFTER_S, remove_stale_leftovers


def touch(path: Path, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial picture")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_only_stale_save_leftovers_are_removed(tmp_path: Path) -> None:
    day = tmp_path / "2026-01-01"
    old = STALE_AFTER_S + 60
    stale = [touch(day / ".keypaint-a1b2c3.png.tmp", old), touch(day / ".keypaint-00007.claim", old),
             touch(tmp_path / ".keypaint-zz.webp.tmp", old)]
    kept = [touch(day / ".keypaint-live.png.tmp", 5),  # another process is writing this one right now
            touch(day / "00003-42.png", old), touch(day / "notes.tmp", old),
            touch(day / ".keypaint.tmp.txt", old),
            touch(tmp_path / "deeper" / "2026-01-02" / ".keypaint-x.png.tmp", old)]  # not a day folder of OUT
    removed = remove_stale_leftovers(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert remove_stale_leftovers(tmp_path / "missing") == []
