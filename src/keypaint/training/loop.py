"""The one training loop: the U-Net, VAE and LCM trainers and `keypaint finetune` plug into it.

As in nanoGPT, the variant supplies what differs: one optimizer step (`step(index) -> StepResult`) and how
to save a checkpoint (`save(state)`). The loop owns the rest:

- resume: the step, the seconds already trained and the last loss come from the checkpoint's state;
- the budget: stop at `max_steps` or after `max_minutes`, and set the learning rate from the `Schedule`
  (which follows whichever of the two runs out first) before every step;
- logging: the mean loss and the throughput every `log_every` steps (trackers, a printed line, the bar);
- many processes (`accelerate launch`): the logged loss is every process's mean, and the time budget's end is
  the main process's call, so all processes stop at the same step and none waits forever on the others;
- the non-finite loss check at every log, a `NonFiniteLoss` error naming the step;
- checkpoints every `checkpoint_every` steps and once at the end (main process only);
- the end-of-run report: `report.json` in the run folder, and a `<kind> done: {...}` line.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from keypaint.training.checkpoint import Checkpoint
from keypaint.training.common import Schedule, Throughput, TrainingError

KEPT = "the last good checkpoint was kept"


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; no checkpoint is written from that point on."""


@dataclass(frozen=True)
class Cadence:
    """When a run stops, logs and saves (in optimizer steps; minutes of wall clock across resumes)."""

    max_steps: int
    checkpoint_every: int
    log_every: int = 1
    max_minutes: float | None = None


@dataclass(frozen=True)
class Display:
    """How the run shows itself: the progress bar, and a printed line per log (the trainers) or not."""

    desc: str
    show: bool = True  # the progress bar (only ever on the main process)
    print_logs: bool = True  # "<kind> step N loss L R img/s" lines; False: the bar's postfix only
    unit: str = "img"  # what a step's items are, in log lines: N img/s
    rate_key: str = "images_per_s"  # the throughput's name in the trackers
    mininterval: float = 10.0  # seconds between bar refreshes
    hint: str = KEPT  # what the non-finite loss error advises


@dataclass
class StepResult:
    """What one optimizer step hands back to the loop."""

    loss: torch.Tensor  # this step's loss (the loop detaches it; read only at log steps)
    items: int  # pictures or latents in this process's batch, for the throughput


@dataclass
class Summary:
    """Where the run ended."""

    step: int
    loss: float  # mean loss over the last log interval (or the tail after it)
    rate: float  # items per second over the last interval, all processes
    elapsed_s: float  # training seconds over the whole run, resumed parts included
    seconds: float  # this invocation's training seconds


class TrainingLoop:
    """One run of one variant; `step` is where it starts (0, or the resumed checkpoint's step)."""

    def __init__(self, kind: str, accelerator: Accelerator, cadence: Cadence, display: Display, *,
                 resume: Checkpoint | None = None, tracker_config: dict[str, str] | None = None) -> None:
        self.kind, self.accelerator, self.cadence, self.display = kind, accelerator, cadence, display
        state = resume.state if resume else {}
        self.step = int(state.get("step", 0))
        self.elapsed0 = float(state.get("elapsed_s", 0.0))
        self.loss = float(state.get("loss", math.nan))
        self.rate = 0.0
        self._start = time.perf_counter()
        self._trackers = tracker_config is not None
        if tracker_config is not None and accelerator.is_main_process:
            accelerator.init_trackers(kind, config=tracker_config)

    def elapsed(self) -> float:
        """Training seconds so far, resumed parts included."""
        return self.elapsed0 + time.perf_counter() - self._start

    def state(self, extra: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's state: kind, step, elapsed seconds, loss, then the variant's own keys."""
        return {"kind": self.kind, "step": self.step, "elapsed_s": self.elapsed(), "loss": self.loss, **extra}

    def run(self, optimizer: torch.optim.Optimizer, schedule: Schedule, step: Callable[[int], StepResult],
            save: Callable[[dict[str, Any]], None], *, extra_state: dict[str, Any] | None = None,
            note: Callable[[], str] | None = None, after_step: Callable[[int], None] | None = None,
            on_step: Callable[[int], None] | None = None) -> Summary:
        """Train from `self.step` to the budget's end; the last checkpoint is written before returning.

        `save(state)` writes a checkpoint (main process only); `note()` adds text to log lines;
        `after_step(step)` runs after each step's checkpoint (sample pictures); `on_step(step)` last.
        """
        cadence, accelerator = self.cadence, self.accelerator
        extra = extra_state or {}
        self._start = time.perf_counter()
        loss_sum: torch.Tensor | float
        meter, loss_sum, loss_n = Throughput(), 0.0, 0  # loss_sum: a tensor once a step is in
        bar = tqdm(total=cadence.max_steps, initial=self.step, desc=self.display.desc, unit="step",
                   disable=not (self.display.show and accelerator.is_main_process), dynamic_ncols=True,
                   mininterval=self.display.mininterval)
        while self.step < cadence.max_steps:
            elapsed = self.elapsed()
            if cadence.max_minutes and self._out_of_time(elapsed):
                break
            for group in optimizer.param_groups:  # a group's "lr_scale": its rate relative to the schedule's
                group["lr"] = schedule.lr_at(self.step, elapsed) * group.get("lr_scale", 1.0)
            result = step(self.step)
            self.step += 1
            meter.add(result.items * accelerator.num_processes)
            loss_sum, loss_n = loss_sum + result.loss.detach(), loss_n + 1  # no sync with the device
            bar.update(1)
            if self.step % cadence.log_every == 0 or self.step == cadence.max_steps:
                self.loss, loss_sum, loss_n, self.rate = self._mean(loss_sum) / loss_n, 0.0, 0, meter.rate()
                self._log(optimizer, bar, note)
                self.check_finite()
            if self.step % cadence.checkpoint_every == 0 and accelerator.is_main_process:
                self._save(save, extra)
            if after_step is not None:
                after_step(self.step)
            if on_step is not None:
                on_step(self.step)
        bar.close()
        seconds = time.perf_counter() - self._start
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if loss_n:
                self.loss, self.rate = float(loss_sum) / loss_n, self.rate or meter.rate()
            self._save(save, extra)
        return Summary(self.step, self.loss, self.rate, self.elapsed(), seconds)

    def _out_of_time(self, elapsed: float) -> bool:
        """The budget is spent: the main process's clock decides for every process."""
        spent = elapsed >= 60 * (self.cadence.max_minutes or 0.0)
        if self.accelerator.num_processes == 1:
            return spent
        accelerator = self.accelerator
        flag = torch.tensor([float(spent and accelerator.is_main_process)], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def _mean(self, loss_sum: torch.Tensor | float) -> float:
        """The summed loss averaged over the processes (a collective: every process logs at the same step)."""
        if self.accelerator.num_processes == 1 or not isinstance(loss_sum, torch.Tensor):
            return float(loss_sum)
        return float(self.accelerator.reduce(loss_sum.detach().clone(), reduction="mean"))

    def check_finite(self) -> None:
        """NonFiniteLoss naming the step when the current loss is NaN or infinite."""
        if not math.isfinite(self.loss):
            raise NonFiniteLoss(f"loss is {self.loss} at step {self.step}; {self.display.hint}")

    def _save(self, save: Callable[[dict[str, Any]], None], extra: dict[str, Any]) -> None:
        self.check_finite()
        save(self.state(extra))

    def _log(self, optimizer: torch.optim.Optimizer, bar: Any, note: Callable[[], str] | None) -> None:
        display = self.display
        bar.set_postfix(loss=f"{self.loss:.4f}", refresh=False)
        if not display.print_logs:
            return
        self.accelerator.log({"loss": self.loss, "lr": optimizer.param_groups[0]["lr"],
                              display.rate_key: self.rate}, step=self.step)
        line = f"{self.kind} step {self.step} loss {self.loss:.5f} {self.rate:.0f} {display.unit}/s"
        self.accelerator.print(f"{line} {note()}" if note else line, flush=True)

    def finish(self, run_dir: Path, report: Callable[[], dict[str, Any]], announce: bool = True) -> dict:
        """The end-of-run report (main process): run_dir/report.json and a `<kind> done:` line.

        Every process waits here; the trackers are closed. Other processes return {}.
        """
        written: dict[str, Any] = {}
        if self.accelerator.is_main_process:
            written = report()
            (run_dir / "report.json").write_text(json.dumps(written, indent=1), encoding="utf-8")
            if announce:
                print(f"{self.kind} done: {json.dumps(written)}", flush=True)
        if self._trackers:
            self.accelerator.end_training()
        return written
