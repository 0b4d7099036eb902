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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "mysql://x@y/z"], "give a SQLite file or a postgresql:// URL"),
        (["--out", "s3://bucket/pictures"], "give --db FILE or --db postgresql://"),
        (["--replicas", "2"], "--replicas go with --ray"),
        (["--ray"], "--ray needs jobs every replica can reach"),
        (["--ray", "--db", "postgresql://u@h/d", "--replicas", "2", "--min-replicas", "1"],
         "--replicas N for a fixed number"),
        (["--ray", "--db", "postgresql://u@h/d", "--min-replicas", "1"], "needs both"),
        (["--ray", "--db", "postgresql://u@h/d", "--min-replicas", "3", "--max-replicas", "2"],
         "more than --max-replicas"),
    ],
)
def test_bad_cluster_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    app = typer.Typer()
    app.command()(serve_command)
    result = CliRunner().invoke(app, ["--model", "nope", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "nope" not in result.output


def test_serving_without_ray_never_imports_ray_or_psycopg(tmp_path: Path) -> None:
    """The plain server (SQLite) is built without the cluster extra's libraries."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path\n"
        "from keypaint.cli.app import main\n"
        "from keypaint.server.app import create_app\n"
        "from keypaint.server.config import ServerConfig\n"
        "from keypaint.core.painter import Painter\n"
        "from keypaint.models.tiny import tiny_model\n"
        "from keypaint.models.loaded import ModelKind\n"
        f"create_app(ServerConfig(out=Path({str(tmp_path)!r})), painter=Painter(tiny_model(ModelKind.SD1)))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'psycopg')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
