"""`keypaint serve`'s speed options are checked before any model loads (exit 2, one line)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keypaint.cli.serve_cmd import serve_command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-merging", "0.9"], "ratio in [0, 0.75]"),
        (["--fast", "--deep-cache", "2"], "cannot be combined with fast"),
        (["--fast", "--token-merging", "0.5"], "cannot be combined with fast"),
        (["--deep-cache", "0"], "within [1, 10]"),
    ],
)
def test_bad_speed_options_stop_the_server_before_it_loads(
    tmp_path: Path, args: list[str], message: str
) -> None:
    app = typer.Typer()
    app.command()(serve_command)
    result = CliRunner().invoke(app, [*args, "--model", "nope", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "nope" not in result.output  # the model was never looked up
    assert not (tmp_path / "out").exists()
