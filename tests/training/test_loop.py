"""The shared training loop on a tiny real model: cadence, resume, a non-finite loss, the report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from keypaint.training.checkpoint import Checkpoint, latest_checkpoint, read_checkpoint, save_checkpoint
from keypaint.training.common import Schedule, make_accelerator
from keypaint.training.loop import Cadence, Display, NonFiniteLoss, StepResult, TrainingLoop


class Toy:
    """A two-layer MLP regressing a fixed random target; batches drawn by (seed, step), as finetune does."""

    def __init__(self, run_dir: Path, resume: Checkpoint | None = None, nan_at: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-2)
        if resume is not None:
            self.model.load_state_dict(resume.model)
            self.optimizer.load_state_dict(resume.optimizer)
        self.run_dir, self.nan_at = run_dir, nan_at
        self.saved: list[dict[str, Any]] = []  # every state written, in order
        self.lrs: list[float] = []  # the learning rate each step ran with

    def step(self, index: int) -> StepResult:
        g = torch.Generator().manual_seed(1000 + index)
        x = torch.randn(3, 4, generator=g)
        loss = torch.nn.functional.mse_loss(self.model(x).squeeze(-1), x.sum(-1))
        if index + 1 == self.nan_at:
            loss = loss * math.nan
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(loss, len(x))

    def save(self, state: dict[str, Any]) -> None:
        self.saved.append(state)
        model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        save_checkpoint(self.run_dir, Checkpoint(model, {}, self.optimizer.state_dict(), state))


def run(toy: Toy, steps: int, *, every: int = 2, log_every: int = 1, resume: Checkpoint | None = None,
        on_step: Any = None, display: Display | None = None) -> tuple[TrainingLoop, Any]:
    loop = TrainingLoop("toy", make_accelerator(toy.run_dir, cpu=True), Cadence(steps, every, log_every),
                        display or Display("toy", show=False), resume=resume)
    schedule = Schedule(steps, None, 1e-2, warmup_steps=2)
    return loop, loop.run(toy.optimizer, schedule, toy.step, toy.save, extra_state={"extra": 1},
                          on_step=on_step)


def test_cadence_logs_and_checkpoints_every_n_steps_and_at_the_end(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toy = Toy(tmp_path / "run")
    _, end = run(toy, 5, every=2, log_every=2)
    assert [s["step"] for s in toy.saved] == [2, 4, 5]  # every 2 steps, and once at the end
    assert all(s["kind"] == "toy" and s["extra"] == 1 and s["elapsed_s"] >= 0 for s in toy.saved)
    logged = [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("toy step")]
    assert logged == ["2", "4", "5"]  # log_every, and the last step
    assert end.step == 5 and math.isfinite(end.loss) and end.loss == toy.saved[-1]["loss"]
    assert read_checkpoint(tmp_path / "run" / "checkpoint").state["step"] == 5
    assert toy.lrs[:2] == pytest.approx([5e-3, 1e-2])  # the schedule's warm-up, set before each step


def test_resumed_run_continues_exactly(tmp_path: Path) -> None:
    whole = Toy(tmp_path / "whole")
    run(whole, 6, every=3)

    def kill(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    first = Toy(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        run(first, 6, every=3, on_step=kill)
    found = latest_checkpoint(tmp_path / "resumed")
    assert found is not None
    ckpt = read_checkpoint(found)
    assert ckpt.state["step"] == 3

    second = Toy(tmp_path / "resumed", resume=ckpt)
    loop, end = run(second, 6, every=3, resume=ckpt)
    assert loop.elapsed0 == ckpt.state["elapsed_s"] and end.elapsed_s >= ckpt.state["elapsed_s"]
    assert end.step == 6 and second.lrs == whole.lrs[3:]
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert end.loss == whole.saved[-1]["loss"]


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    toy = Toy(tmp_path / "run", nan_at=3)
    seen: list[int] = []
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3; the last good checkpoint was kept"):
        run(toy, 6, every=2, on_step=seen.append)
    assert seen == [1, 2]  # stopped before anything else happened at step 3
    assert read_checkpoint(tmp_path / "run" / "checkpoint").state["step"] == 2


def test_non_finite_loss_between_logs_is_caught_before_the_final_checkpoint(tmp_path: Path) -> None:
    toy = Toy(tmp_path / "run", nan_at=2)
    hint = "lower --lr (the last checkpoint is kept)"
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3; lower --lr"):
        run(toy, 3, every=10, log_every=10, display=Display("toy", show=False, hint=hint))
    assert toy.saved == [] and latest_checkpoint(tmp_path / "run") is None


def test_report_is_written_and_announced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toy = Toy(tmp_path / "run")
    loop, end = run(toy, 2, display=Display("toy", show=False, print_logs=False))
    report = loop.finish(tmp_path / "run", lambda: {"kind": "toy", "steps": end.step, "loss": end.loss})
    assert json.loads((tmp_path / "run" / "report.json").read_text()) == report
    out = capsys.readouterr().out
    assert out.splitlines() == [f"toy done: {json.dumps(report)}"]  # print_logs=False: no step lines

    quiet = Toy(tmp_path / "quiet")
    loop, _ = run(quiet, 1, display=Display("toy", show=False, print_logs=False))
    loop.finish(tmp_path / "quiet", lambda: {"steps": 1}, announce=False)
    assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "quiet" / "report.json").read_text()) == {"steps": 1}
