"""What the trainers share: accelerate setup, learning-rate curve, EMA, run folders, random streams.

One code path serves 1 CPU, 1 GPU and N GPUs: `accelerate launch` / `torchrun` set the process group
and `Accelerator` picks it up; on CUDA the forward passes run under bf16 autocast.
"""

from __future__ import annotations

import importlib.util
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers.training_utils import EMAModel

from keypaint.errors import KeypaintError
from keypaint.training.checkpoint import Checkpoint, latest_checkpoint, read_checkpoint, save_checkpoint


class TrainingError(KeypaintError):
    """A run that cannot start or continue (bad options, diverged loss, nothing to resume)."""


@dataclass
class Schedule:
    """When to stop and how fast to learn; progress is the larger of steps and minutes used."""

    max_steps: int  # hard stop
    max_minutes: float | None  # wall-clock stop (optional); the learning-rate curve follows it too
    lr: float  # peak learning rate
    warmup_steps: int  # linear warm-up from 0
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio

    def progress(self, step: int, elapsed_s: float) -> float:
        p = step / self.max_steps
        if self.max_minutes:
            p = max(p, elapsed_s / (60.0 * self.max_minutes))
        return min(1.0, p)

    def lr_at(self, step: int, elapsed_s: float) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress(step, elapsed_s)))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)


def make_accelerator(run_dir: Path, cpu: bool = False) -> Accelerator:
    """bf16 autocast on CUDA, fp32 elsewhere; TensorBoard logs under run_dir/logs when installed."""
    use_cuda = torch.cuda.is_available() and not cpu
    log_with = "tensorboard" if importlib.util.find_spec("tensorboard") else None
    accelerator = Accelerator(
        mixed_precision="bf16" if use_cuda else "no", cpu=not use_cuda, log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


def average_gradients(accelerator: Accelerator, params: list[torch.nn.Parameter]) -> None:
    """Data parallel without DDP's wrapper (trained tensors outside one module: LoRA layers, token vectors):
    every process steps with all processes' mean gradient, so their weights stay identical."""
    grads = [p.grad for p in params if p.grad is not None]
    if accelerator.num_processes == 1 or not grads:
        return
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    for grad, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(mean.view_as(grad))


def make_ema(model: torch.nn.Module, decay: float) -> EMAModel:
    """EMA of the weights with diffusers' warm-up (decay grows as 1 - (1 + step)^-2/3 up to `decay`)."""
    return EMAModel(model.parameters(), decay=decay, use_ema_warmup=True, power=2 / 3, foreach=True)


def ema_tensors(ema: EMAModel, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = [name for name, _ in model.named_parameters()]
    return {n: p.detach().float().cpu() for n, p in zip(names, ema.shadow_params, strict=True)}


def load_ema(ema: EMAModel, model: torch.nn.Module, tensors: dict[str, torch.Tensor], counters: dict) -> None:
    names = [name for name, _ in model.named_parameters()]
    for shadow, name in zip(ema.shadow_params, names, strict=True):
        shadow.data.copy_(tensors[name].to(shadow.device))
    ema.optimization_step = int(counters["optimization_step"])
    ema.cur_decay_value = counters.get("cur_decay_value")


def prepare_run_dir(run_dir: Path, resume: bool) -> Checkpoint | None:
    """Refuse to train over an existing run unless resuming; return the checkpoint to resume from."""
    found = latest_checkpoint(run_dir)
    if resume:
        if found is None:
            raise TrainingError(f"{run_dir}: no checkpoint to resume from")
        return read_checkpoint(found)
    if found is not None:
        raise TrainingError(f"{run_dir} already holds a training run; pass --resume or choose another folder")
    return None


def write_checkpoint(run_dir: Path, model: torch.nn.Module, ema: EMAModel,
                     optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Atomic checkpoint of fp32 weights, EMA and optimizer; refuses a non-finite loss."""
    if not math.isfinite(float(state["loss"])):
        raise TrainingError(f"loss is {state['loss']} at step {state['step']}; kept the last good checkpoint")
    state = {**state, "ema": {"optimization_step": ema.optimization_step,
                              "cur_decay_value": ema.cur_decay_value}}
    model_sd = {k: v.float() for k, v in model.state_dict().items()}
    save_checkpoint(run_dir, Checkpoint(model_sd, ema_tensors(ema, model), optimizer.state_dict(), state))


class Throughput:
    """Images per second over the last interval, for logs and the model card."""

    def __init__(self) -> None:
        self.t0, self.n = time.perf_counter(), 0

    def add(self, n: int) -> None:
        self.n += n

    def rate(self) -> float:
        now = time.perf_counter()
        r = self.n / max(now - self.t0, 1e-9)
        self.t0, self.n = now, 0
        return r


def seeded_generator(seed: int, process_index: int) -> torch.Generator:
    """Each process draws its own batches: data parallel sampling without a distributed sampler."""
    return torch.Generator().manual_seed(seed * 1000 + process_index)


def random_streams(seed: int, step: int, process_index: int) -> tuple[torch.Generator, random.Random]:
    """A run's batch and caption streams, seeded by (seed, step, process).

    A resumed run draws what the uninterrupted one would have drawn from that step on.
    """
    gen = seeded_generator(seed + step, process_index)
    rng = random.Random(seed * 1000 + process_index + 7919 * step)
    return gen, rng


def config_strings(cfg: Any) -> dict[str, str]:
    """A config dataclass as strings: the trackers' hyperparameters and the checkpoint's `config`."""
    return {k: str(v) for k, v in asdict(cfg).items()}
