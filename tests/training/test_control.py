"""`keypaint train controlnet` at toy size on the CPU: both kinds write a config beside compact weights that
load back, the maps look like sketches, and bad options exit 2 before any work."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, T2IAdapter
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from keypaint.builtin.architecture import build_unet, build_vae, size_preset
from keypaint.cli.train_cmd import train_app
from keypaint.core.t2i_adapters import load_control_folder
from keypaint.training.control import sketch_map

runner = CliRunner()


@pytest.fixture
def frozen(tmp_path: Path) -> Path:
    """A tiny random-weight VAE and U-Net of the built-in model's architecture: ROOT/vae, ROOT/unet."""
    vae_size, unet_size = size_preset("tiny")
    torch.manual_seed(0)
    vae = build_vae(vae_size)
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "frozen" / "vae")
    build_unet(unet_size).save_pretrained(tmp_path / "frozen" / "unet")
    return tmp_path / "frozen"


@pytest.mark.parametrize(("kind", "cls"), [("adapter", T2IAdapter), ("controlnet", ControlNetModel)])
def test_train_controlnet_writes_a_compact_control_that_loads(data_folder: Path, frozen: Path, tmp_path: Path,
                                                              kind: str, cls: type) -> None:
    run = tmp_path / kind
    result = runner.invoke(train_app, [
        "controlnet", str(data_folder), "--out", str(run), "--kind", kind, "--unet", str(frozen / "unet"),
        "--vae", str(frozen / "vae"), "--steps", "2", "--batch-size", "4", "--log-every", "1",
        "--warmup", "1", "--cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 2 and report["pictures"] == 8 and math.isfinite(report["loss"])
    assert report["compact_bytes"] == (run / kind / "keypaint-compact.safetensors").stat().st_size
    net = load_control_folder(run / kind, torch.float32)
    assert isinstance(net, cls)
    trained = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
    assert all(torch.isfinite(v).all() for v in trained.values())
    again = runner.invoke(train_app, ["controlnet", str(data_folder), "--out", str(run), "--kind", kind,
                                      "--unet", str(frozen / "unet"), "--vae", str(frozen / "vae"), "--cpu"])
    assert again.exit_code == 2 and "already holds a training run" in again.output  # nothing overwritten


@pytest.mark.parametrize(("args", "words"), [
    (["--kind", "lora"], "--kind must be adapter or controlnet"),
    (["--adapter-type", "huge"], "--adapter-type must be full_adapter or light_adapter"),
    (["--unet", "{missing}"], "no model folder here"),
])
def test_bad_options_exit_2_before_training(data_folder: Path, tmp_path: Path, args: list[str],
                                            words: str) -> None:
    extra = [a.format(missing=tmp_path / "none") for a in args]
    result = runner.invoke(train_app, ["controlnet", str(data_folder), "--out", str(tmp_path / "run"),
                                       *extra])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_sketch_maps_are_white_strokes_on_black_of_varied_width() -> None:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((8, 8, 56, 56), fill=(200, 40, 40), outline="black", width=2)
    rgb = np.asarray(image)
    rng = random.Random(0)
    maps = [sketch_map(rgb, rng) for _ in range(24)]
    for lines in maps:
        assert lines.shape == (64, 64) and lines.dtype == np.uint8
        assert set(np.unique(lines)) <= {0, 255} and 0 < (lines > 0).mean() < 0.5  # strokes, mostly black
        assert lines[32, 32] == 0  # the flat inside is not a stroke
    assert len({int((m > 0).sum()) for m in maps}) > 4  # thresholds and stroke widths vary
