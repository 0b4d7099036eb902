"""The built-in sketch control (`keypaint-sketch`, a T2I-Adapter in compact weights) loads, fits the budget,
and steers the built-in model towards a drawn stroke; `keypaint generate` uses it for a control image given
without a control model, and records it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import T2IAdapter
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from keypaint.builtin import MODEL, SKETCH, load_builtin, weights_present
from keypaint.cli.app import app
from keypaint.core.control import ControlUnit, Preprocess
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.t2i_adapters import load_control_folder
from keypaint.outputs.metadata import read_metadata

FOLDER = MODEL.controls / SKETCH
shipped = pytest.mark.skipif(not (weights_present() and FOLDER.is_dir()), reason="no shipped sketch control")


def ring() -> Image.Image:
    """A hand sketch: one thick dark ring on white, larger than the picture as people draw them."""
    image = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(image).ellipse((40, 40, 216, 216), outline="black", width=8)
    return image


def stroke_distance(picture: Image.Image, strokes: np.ndarray) -> float:
    """Mean distance (px) from the stroke pixels to the picture's nearest Canny edge."""
    edges = cv2.Canny(cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2GRAY), 100, 200)
    if not edges.any():
        return 128.0
    return float(cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 3)[strokes].mean())


@pytest.fixture(scope="module")
def painter() -> Painter:
    return Painter(load_builtin(), builtin=MODEL)


@shipped
def test_shipped_sketch_control_is_small_and_loads(painter: Painter) -> None:
    files = list(FOLDER.glob("*.safetensors"))
    assert len(files) == 1 and files[0].stat().st_size <= 4_000_000
    adapter = load_control_folder(FOLDER, torch.float32)
    assert isinstance(adapter, T2IAdapter)
    assert adapter.config.channels == list(painter.model.pipe.unet.config.block_out_channels)


@shipped
def test_sketch_control_steers_the_builtin_model_towards_the_stroke(painter: Painter) -> None:
    unit = ControlUnit(SKETCH, image=ring(), preprocess=Preprocess.SCRIBBLE)
    strokes = np.asarray(ring().convert("L").resize((128, 128))) < 128
    plain, steered = [], []
    for seed in range(3):
        base = GenerationParams("red apple", steps=8, seed=seed)
        plain.append(painter.generate(base)[0].image)
        steered.append(painter.generate(replace(base, control_units=(unit,)))[0].image)
    for a, b in zip(plain, steered, strict=True):
        assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() > 2.0
    far = np.mean([stroke_distance(p, strokes) for p in plain])
    near = np.mean([stroke_distance(p, strokes) for p in steered])
    # the shipped control is weak (255 CPU training steps, docs/model-card.md): measured 5.45 px against 6.13
    assert near < 0.95 * far, (near, far)


@shipped
def test_generate_uses_the_sketch_control_for_a_control_image_alone(tmp_path: Path) -> None:
    ring().save(tmp_path / "sketch.png")
    result = CliRunner().invoke(app, ["generate", "red apple", "--steps", "2", "--seed", "1", "--out",
                                      str(tmp_path / "out"), "--control-image", str(tmp_path / "sketch.png"),
                                      "--control-preprocess", "scribble"])
    assert result.exit_code == 0, result.output
    [picture] = (tmp_path / "out").rglob("0*.png")
    meta = read_metadata(picture)
    assert meta.infotext is not None
    assert 'ControlNet 0: "Module: scribble_xdog, Model: keypaint-sketch [' in meta.infotext
    assert meta.data is not None and meta.data["params"]["control_units"][0]["model"] == SKETCH
