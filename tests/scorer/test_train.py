"""Training: a CPU smoke run, exact resume after a stop, refusal to overwrite, and real learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keypaint.errors import KeypaintError
from keypaint.scorer.train import LOG_NAME, STATE_NAME, TrainConfig, batch_indices, lr_at, train_scorer

from .conftest import TOY_MODEL

FAST = {"batch_size": 16, "lr": 3e-3, "model": TOY_MODEL, "device": "cpu", "progress": False}


def _state(out: Path) -> dict:
    return torch.load(out / STATE_NAME, map_location="cpu", weights_only=True)


def test_smoke_run_writes_a_loadable_scorer(squares: Path, tmp_path: Path, one_thread: None) -> None:
    result = train_scorer(squares, tmp_path, steps=4, checkpoint_every=2, log_every=1, **FAST)
    assert result.step == 4 and result.loss == result.loss  # not NaN
    assert _state(tmp_path)["step"] == 4
    weights = load_file(tmp_path / "model.safetensors")
    assert all(v.dtype == torch.float16 for v in weights.values())
    steps = [json.loads(line)["step"] for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_continues_exactly(squares: Path, tmp_path: Path, one_thread: None) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train_scorer(squares, straight, steps=6, checkpoint_every=3, **FAST)
    train_scorer(squares, stopped, steps=6, checkpoint_every=3, stop_at=3, **FAST)  # as if killed after 3
    with pytest.raises(KeypaintError, match="--resume"):
        train_scorer(squares, stopped, steps=6, **FAST)
    result = train_scorer(squares, stopped, steps=6, checkpoint_every=3, resume=True, log_every=1, **FAST)
    assert result.step == 6
    logged = [json.loads(line)["step"] for line in (stopped / LOG_NAME).read_text().splitlines()]
    assert logged[-3:] == [4, 5, 6]  # picked up after step 3, not from 0
    a, b = _state(straight)["model"], _state(stopped)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_batches_cover_every_picture_each_epoch() -> None:
    seen = torch.cat([batch_indices(step, 5, 20, seed=3) for step in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(batch_indices(4, 5, 20, seed=3), batch_indices(0, 5, 20, seed=3))


def test_lr_warms_up_then_decays() -> None:
    cfg = TrainConfig(steps=1000, lr=1.0, warmup_steps=100)
    assert lr_at(0, cfg) == pytest.approx(0.01)
    assert lr_at(99, cfg) == pytest.approx(1.0)
    assert lr_at(999, cfg) == pytest.approx(0.1, abs=1e-3)


def test_training_learns_the_colours(trained: Path) -> None:
    """150 CPU steps on coloured squares: held-out squares get their colour's label first."""
    rows = [json.loads(line) for line in (trained / LOG_NAME).read_text().splitlines()]
    first_loss = next(r["loss"] for r in rows if "loss" in r)
    last = rows[-1]
    assert last["step"] == 150
    assert last["heldout_top1"] >= 0.8
    assert [r["loss"] for r in rows if "loss" in r][-1] < 0.7 * first_loss


def test_minutes_limit_stops_with_a_checkpoint(squares: Path, tmp_path: Path, one_thread: None) -> None:
    result = train_scorer(squares, tmp_path, steps=1000, minutes=1e-6, **FAST)
    assert result.step == 1
    state = _state(tmp_path)
    assert state["step"] == 1 and state["elapsed_s"] > 0
    assert lr_at(500, TrainConfig(steps=1000, lr=1.0, minutes=1.0), elapsed_s=60.0) == pytest.approx(0.1)
