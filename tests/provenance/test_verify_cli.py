"""`keypaint verify IMAGE...` through typer: exit 0 when it ran, 2 when a file is not a picture."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.verify_cmd import verify_command
from keypaint.outputs.results import save_generated

app = typer.Typer()
app.command("verify")(verify_command)  # mounted the same way in keypaint.cli.app
runner = CliRunner()


def test_reports_each_mark_and_exits_0_even_when_marks_are_missing(generated, tmp_path: Path) -> None:
    marked = save_generated(generated, tmp_path)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 64), "gray").save(plain)
    result = runner.invoke(app, [str(marked), str(plain)])
    assert result.exit_code == 0, result.output
    assert result.output.count("found") >= 3 and "payload keypaint:" in result.output
    assert result.output.count("missing") >= 3


def test_json_lines_and_exit_2_for_unreadable_files(generated, tmp_path: Path) -> None:
    marked = save_generated(generated, tmp_path, format="jpeg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    result = runner.invoke(app, ["--json", str(broken), str(marked)])
    assert result.exit_code == 2
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    [report] = [json.loads(line) for line in lines]
    assert report["marked"] and report["c2pa"]["status"] == "found" and report["format"] == "JPEG"
    assert "broken.jpg is not a picture" in result.output


def test_a_file_that_is_no_picture_is_named_plainly(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = runner.invoke(app, [str(notes)])
    assert result.exit_code == 2
    assert f"{notes} is not a picture (keypaint checks PNG, JPEG and WebP files)" in result.output
    assert "BytesIO" not in result.output
