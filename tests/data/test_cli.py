"""`keypaint data emoji` as a user runs it: a table on success, one line and exit 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_icons_command_builds_a_test_sized_set(icon_tarballs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["icons", str(out), "--from-tarballs", str(icon_tarballs), "--sets", "tabler,ph,noto",
            "--limit", "2", "--size", "16", "--workers", "1", "--heldout", "0"]
    result = CliRunner().invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "tabler" in result.output and "1.2.41" in result.output
    # two icons each of tabler and ph; noto's first two names ("grinning", "grinning-face") are one emoji
    assert len((out / "train" / "metadata.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("sets", "prepare", "message"),
    [
        ("tabler,emojione-monotone", False, "emojione-monotone is excluded"),
        ("tabler,nope", False, "unknown set nope"),
        ("tabler", True, "is not empty"),
    ],
)
def test_icons_bad_input_is_one_line_exit_2_before_download(
    tmp_path: Path, sets: str, prepare: bool, message: str
) -> None:
    out = tmp_path / "out"
    if prepare:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    cache = tmp_path / "cache"  # empty: any download attempt would create files or fail differently
    result = CliRunner().invoke(data_app, ["icons", str(out), "--sets", sets, "--npm-cache", str(cache)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not cache.exists()
