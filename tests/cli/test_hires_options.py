"""`keypaint generate --hires ... / --outpaint ...` through the real CLI on a tiny model on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.app import app
from keypaint.outputs.metadata import read_metadata

runner = CliRunner()
TINY = ["--model", "tiny", "--steps", "2", "--seed", "5", "--size", "32x32"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def saved(output: str) -> Path:
    return next(Path(w[0]) for w in map(str.split, output.splitlines()) if w and w[0].endswith(".png"))


def test_hires_saves_the_big_picture_and_from_remakes_it(home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "apple", *TINY, "--hires", "2", "--hires-upscaler", "Lanczos",
                       "--hires-steps", "4", "--hires-strength", "0.5", "--out", str(tmp_path / "a"))
    assert code == 0, output
    first = saved(output)
    meta = read_metadata(first)
    assert meta.infotext is not None
    assert "Size: 32x32" in meta.infotext and "Hires upscale: 2, Hires steps: 4, Hires upscaler: Lanczos" \
        in meta.infotext and "Denoising strength: 0.5" in meta.infotext
    assert meta.data is not None and meta.data["params"]["hires"]["upscaler"] == "Lanczos"
    code, output = run("generate", "--from", str(first), "--model", "tiny", "--out", str(tmp_path / "b"))
    assert code == 0, output
    again = saved(output)
    assert Image.open(again).size == (64, 64)
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(first)))


def test_outpaint_extends_the_init_image(home: Path, tmp_path: Path) -> None:
    init = tmp_path / "init.png"
    Image.new("RGB", (32, 32), (20, 140, 60)).save(init)
    code, output = run("generate", "apple", "--model", "tiny", "--steps", "2", "--seed", "1", "--init",
                       str(init), "--outpaint", "left:16,down:8", "--no-watermark",
                       "--out", str(tmp_path / "o"))
    assert code == 0, output
    picture = Image.open(saved(output))
    assert picture.size == (48, 40)
    assert picture.convert("RGB").getpixel((47, 0)) == (20, 140, 60)  # the original corner, kept


@pytest.mark.parametrize(("args", "message"), [
    (["--hires", "0.5"], "--hires: scale must be within [1, 8]"),
    (["--hires", "2", "--hires-strength", "2"], "--hires: strength must be within (0, 1]"),
    (["--hires-steps", "4"], "--hires-steps: needs --hires SCALE"),
    (["--hires", "2", "--hires-upscaler", "nope"], "no upscaler 'nope'"),
    (["--outpaint", "left:10"], "--outpaint: left must be a multiple of 8"),
    (["--outpaint", "north:8"], "--outpaint: expected SIDE:PIXELS"),
    (["--outpaint", "left:8"], "--outpaint: needs an init image"),
])
def test_bad_options_exit_2(home: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = run("generate", "apple", *TINY, *args, "--out", str(tmp_path))
    assert code == 2, output
    assert message in " ".join(output.split()), output
