"""Files as keypaint writes them: never over an existing one, with 0666 minus the umask (not 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keypaint.errors import OutputError
from keypaint.outputs.files import write_new, write_numbered


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_usual_permissions(tmp_path: Path, umask_022: None) -> None:
    assert _mode(write_numbered(b"x", tmp_path, stem_hint="1")) == 0o644
    assert _mode(write_new(b"y", tmp_path / "named.png")) == 0o644


def test_the_umask_decides(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_numbered(b"x", tmp_path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_write_new_never_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    assert write_new(b"first", target) == target
    with pytest.raises(OutputError, match="exists"):
        write_new(b"second", target)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(OutputError, match="cannot save"):
        write_new(b"x", tmp_path / "missing-folder" / "b.png")
