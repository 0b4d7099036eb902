"""`keypaint generate --control-model ... --control-image ...` through the real CLI, and `--from`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from keypaint.cli.app import app
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model
from keypaint.outputs.metadata import read_metadata

from ..core.controlnet_files import save_single_file, tiny_controlnet

runner = CliRunner()
TINY = ["--model", "tiny", "--steps", "2", "--seed", "4"]


@pytest.fixture
def control_home(home: Path, tmp_path: Path) -> Path:
    """The tiny model's home with an A1111-layout ControlNet, and a sketch to steer with."""
    (home / "controlnet").mkdir()
    save_single_file(tiny_controlnet(tiny_model(ModelKind.SD1)), home / "controlnet" / "lines.safetensors")
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((10, 10, 54, 54), outline="black", width=3)
    image.save(tmp_path / "sketch.png")
    return home


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def saved(output: str) -> Path:
    [path] = [Path(w[0]) for w in map(str.split, output.splitlines()) if w and w[0].endswith(".png")]
    return path


def test_control_options_steer_and_from_remakes_the_picture(control_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    control = ["--control-model", "lines", "--control-image", str(tmp_path / "sketch.png"),
               "--control-preprocess", "canny", "--control-weight", "0.9", "--control-end", "0.8"]
    code, output = run("generate", "red apple", *TINY, "--out", str(out), *control)
    assert code == 0, output
    first = saved(output)
    meta = read_metadata(first)
    assert meta.infotext is not None and 'ControlNet 0: "Module: canny, Model: lines [' in meta.infotext
    assert meta.data is not None
    [unit] = meta.data["params"]["control_units"]
    assert unit["weight"] == 0.9 and unit["end"] == 0.8
    assert (first.parent / "controls" / f"{unit['image']}.png").is_file()
    code, output = run("generate", "--from", str(first), "--out", str(out))
    assert code == 0, output
    again = saved(output)
    def picture(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path), dtype=float)

    np.testing.assert_allclose(picture(again), picture(first), atol=2)  # the same picture again
    code, plain = run("generate", "red apple", *TINY, "--out", str(out))
    assert np.abs(picture(saved(plain)) - picture(first)).mean() > 1  # the ControlNet made a difference


@pytest.mark.parametrize(("extra", "words"), [
    (["--control-model", "nope", "--control-image", "{sketch}"], "unknown ControlNet 'nope'"),
    (["--control-model", "lines"], "--control-image: give one per --control-model"),
    (["--control-model", "lines", "--control-image", "{sketch}", "--control-start", "0.9", "--control-end",
      "0.2"], "--control-start: unit 0: start 0.9 must be before end 0.2"),
    (["--control-model", "lines", "--control-image", "{missing}"], "does not exist"),
    (["--control-weight", "0.5"], "--control-weight: needs --control-model"),
    (["--control-image", "{sketch}", "--control-preprocess", "scribble"],
     "--control-model: name the ControlNet that steers tiny (only the built-in model has its own sketch "
     "control);"),
    (["--control-image", "{sketch}"], "holds: lines"),
    (["--control-model", "lines", "--control-image", "{sketch}", "--control-preprocess", "depth"],
     "unknown preprocessor 'depth'"),
])
def test_bad_control_options_are_one_line_and_exit_2(control_home: Path, tmp_path: Path, extra: list[str],
                                                     words: str) -> None:
    args = [a.format(sketch=tmp_path / "sketch.png", missing=tmp_path / "none.png") for a in extra]
    code, output = run("generate", "red apple", *TINY, "--out", str(tmp_path / "out"), *args)
    assert code == 2 and words in " ".join(output.split()), output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.png"))
