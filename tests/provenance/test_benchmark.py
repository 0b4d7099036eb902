"""The measurement script's quick mode runs and prints its table (full figures: docs/provenance.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "provenance.py"


def test_quick_mode_prints_the_table() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| pictures | as saved | JPEG q75 |")
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert len(rows) == 2  # the stand-in and the tiny model (quick mode skips the slow built-in model)
    for row in rows:
        as_saved = row.split(" | ")[1]
        assert as_saved.startswith("100% (100%)"), row  # a freshly marked picture always reads back
