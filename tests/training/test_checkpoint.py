"""Checkpoints are swapped in only after they were read back and found finite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from keypaint.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from keypaint.training.common import Schedule


def _ckpt(step: int, value: float) -> Checkpoint:
    w = {"w": torch.full((3,), value)}
    return Checkpoint(model=w, ema=dict(w), optimizer={"state": {}, "param_groups": []},
                      state={"step": step, "loss": 0.5})


def test_save_then_read_back(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _ckpt(1, 1.0))
    save_checkpoint(tmp_path, _ckpt(2, 2.0))
    got = read_checkpoint(tmp_path / "checkpoint")
    assert got.state["step"] == 2 and torch.equal(got.model["w"], torch.full((3,), 2.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temp or old folders left


def test_broken_checkpoint_never_replaces_the_good_one(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _ckpt(1, 1.0))
    with pytest.raises(CheckpointError, match="not finite"):
        save_checkpoint(tmp_path, _ckpt(2, float("nan")))
    assert read_checkpoint(latest_checkpoint(tmp_path)).state["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_kill_between_renames_resumes_from_the_old_folder(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _ckpt(1, 1.0))
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint.old"


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path, _ckpt(1, 1.0))
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(folder)


def test_schedule_warms_up_then_decays_by_steps_or_minutes() -> None:
    s = Schedule(max_steps=100, max_minutes=1.0, lr=1.0, warmup_steps=10)
    assert s.lr_at(0, 0) == pytest.approx(0.1)
    assert s.lr_at(10, 0) == pytest.approx(1.0, abs=0.03)
    assert s.lr_at(99, 0) == pytest.approx(0.1, abs=0.01)
    assert s.lr_at(20, 60.0) == pytest.approx(0.1)  # the minute budget is used up: end of the curve
