"""`keypaint explain ...` through typer on a tiny model folder: files written, one-line errors, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.explain_cmd import explain_app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(explain_app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def model(tiny_dir: Path) -> list[str]:
    return ["--model", str(tiny_dir), "--device", "cpu"]


@pytest.fixture
def picture_file(picture: Image.Image, tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    picture.save(path)
    return path


def is_image(path: Path, fmt: str = "PNG") -> bool:
    with Image.open(path) as image:
        return image.format == fmt


def test_schedules(tmp_path: Path) -> None:
    code, output = run("schedules", "--out", tmp_path / "s.png")
    assert code == 0, output
    assert is_image(tmp_path / "s.png")


def test_forward_from_a_file(model: list[str], picture_file: Path, tmp_path: Path) -> None:
    code, output = run("forward", picture_file, "--steps", "0,10,1000", "--out", tmp_path / "f.png",
                       "--npz", tmp_path / "f.npz", *model)
    assert code == 0, output
    assert is_image(tmp_path / "f.png") and np.load(tmp_path / "f.npz")["latents"].shape == (3, 4, 8, 8)


def test_reverse_writes_grid_animation_and_tensors(model: list[str], tmp_path: Path) -> None:
    code, output = run("reverse", "red apple", "fruit", "--steps", "2", "--seed", "3", "--sampler", "DDIM",
                       "--out", tmp_path / "r.png", "--animation", tmp_path / "r.gif",
                       "--npz", tmp_path / "r.npz", *model)
    assert code == 0, output
    assert "seed 3, 2 U-Net calls" in output
    assert is_image(tmp_path / "r.png") and is_image(tmp_path / "r.gif", "GIF")
    assert np.load(tmp_path / "r.npz")["pred_x0"].shape == (2, 4, 8, 8)


def test_attention_compare_guidance_latent(model: list[str], picture_file: Path, tmp_path: Path) -> None:
    code, output = run("attention", "red apple", "fruit", "-k", "apple", "--steps", "2", "--seed", "1",
                       "--out", tmp_path / "a.png", "--npz", tmp_path / "a.npz", *model)
    assert code == 0, output
    assert list(np.load(tmp_path / "a.npz")["keywords"]) == ["apple"]
    code, output = run("compare", "apple", "--samplers", "DDIM,Euler a", "--steps", "1,2", "--seed", "2",
                       "--out", tmp_path / "c.png", *model)
    assert code == 0, output
    code, output = run("guidance", "apple", "--scales", "1,5", "--steps", "2", "--seed", "2",
                       "--out", tmp_path / "g.webp", *model)
    assert code == 0, output
    assert is_image(tmp_path / "g.webp", "WEBP")
    code, output = run("latent", picture_file, "--size", "32x32", "--repeats", "1", "--max-gflops", "0",
                       "--out", tmp_path / "l.png", *model)
    assert code == 0, output
    assert "48x fewer numbers" in output and "not timed" in output
    assert "U-Net, pixels" in output and "2x3x32x32" in output
    assert all(is_image(tmp_path / name) for name in ("a.png", "c.png", "l.png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["forward", "{pic}", "--steps", "0,1001"], "steps: 1001 is outside the schedule's 0..1000"),
        (["forward", "{pic}", "--steps", "-1"], "steps: -1 is outside the schedule"),
        (["forward", "{pic}", "--steps", "0,ten"], "steps: expected comma-separated numbers"),
        (["forward", "{bad}"], "is not a readable image"),
        (["forward"], "give a picture file or --prompt"),
        (["latent", "{tmp}/missing.png"], "does not exist"),
        (["attention", "red apple", "-k", "banana"], "'banana' is not in the prompt"),
        (["attention", "red apple", "-k", "app"], "'app' is not in the prompt"),
        (["reverse", "apple", "--animation", "{tmp}/r.mp4"], "--animation: r.mp4: the file name must end in"),
        (["reverse", "apple", "--steps", "0"], "steps: must be within [1, 1000]"),
        (["reverse", "apple", "--sampler", "nope"], "unknown sampler 'nope'"),
        (["guidance", "apple", "--scales", "1,-2"], "guidance_scale: must be >= 0"),
        (["compare", "apple", "--steps", "2,0"], "steps: must be within"),
        (["reverse", "apple", "--size", "60x64"], "width: must be a multiple of 8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(model: list[str], picture_file: Path, tmp_path: Path,
                                          args: list[str], message: str) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    filled = [a.format(pic=picture_file, bad=bad, tmp=tmp_path) for a in args]
    code, output = run(*filled, "--out", tmp_path / "o.png", *model)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1] and message in errors[0], output
    assert "Traceback" not in output
