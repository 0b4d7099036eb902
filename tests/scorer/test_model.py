"""The scorer model: preprocessing, save/load round-trip, size budget, best-of picking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from keypaint.errors import ModelError
from keypaint.scorer import Scorer, ScorerConfig, ScorerNet, pick_best
from keypaint.scorer.model import CONFIG_NAME, WEIGHTS_NAME, image_to_array, save_scorer

from .conftest import COLOURS, TOY_MODEL


def _square(colour: str, size: int = 32) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    image.paste(COLOURS[colour], (6, 6, size - 6, size - 6))
    return image


def test_image_to_array_flattens_alpha_on_white_and_pads_square() -> None:
    clear = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 40, 20))
    array = image_to_array(clear, 16)
    assert array.shape == (16, 16, 3)
    assert tuple(array[0, 0]) == (255, 255, 255)  # padding above the wide picture
    assert tuple(array[8, 8]) == (0, 0, 255)
    assert tuple(image_to_array(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 8)[4, 4]) == (255, 255, 255)


def test_default_scorer_fits_the_size_budget() -> None:
    params = sum(p.numel() for p in ScorerNet(ScorerConfig()).state_dict().values())
    assert params * 2 < 10 * 1024 * 1024  # fp16 bytes


def test_save_load_round_trip_scores_identically(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ScorerNet(TOY_MODEL)
    net.load_state_dict(
        {k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    )
    save_scorer(net, tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["model_type"] == "keypaint-scorer" and config["widths"] == [16, 32, 64]
    images = [_square(c) for c in ("red", "green", "blue")]
    texts = ["red square", "green square, flat style"]
    original = Scorer(net).score(images, texts)
    loaded = Scorer.load(tmp_path)
    assert loaded.config == TOY_MODEL
    torch.testing.assert_close(loaded.score(images, texts), original, atol=1e-5, rtol=0)
    assert original.shape == (3, 2) and original.abs().max() <= 1.0 + 1e-5
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a scorer folder"):
        Scorer.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text('{"model_type": "unet"}')
    (tmp_path / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(ModelError, match="not a keypaint scorer"):
        Scorer.load(tmp_path)


def test_pick_best_picks_the_asked_colour(trained: Path) -> None:
    scorer = Scorer.load(trained)
    images = [_square(c) for c in ("red", "green", "blue", "yellow")]
    for asked, colour in enumerate(("red", "green", "blue", "yellow")):
        index, scores = pick_best(scorer, images, f"{colour} square")
        assert index == asked, scores
        assert scores.shape == (4,)
    with pytest.raises(ValueError):
        pick_best(scorer, [], "red square")
