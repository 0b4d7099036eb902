"""`keypaint data emoji` as a user runs it: a table on success, one line and exit 2 on bad input."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from keypaint.cli.data_cmd import data_app


def test_emoji_command_builds_from_tarballs(tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "emoji",
        str(out),
        "--from-tarballs",
        str(tarballs),
        "--sets",
        "noto,fxemoji",
        "--size",
        "16",
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "noto" in result.output and "fxemoji" in result.output
    assert (out / "train" / "metadata.jsonl").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(data_app, ["emoji", str(tmp_path / "out"), "--from-tarballs", str(empty)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "emojibase-data-17.0.0.tgz" in errors[0]
