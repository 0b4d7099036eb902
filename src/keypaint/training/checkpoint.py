"""Training checkpoints that survive a kill: write a new folder, validate it, then swap it in.

A checkpoint is a plain folder (nanoGPT's "plain dict", as files): `model.safetensors`, `ema.safetensors`,
`optimizer.pt` (tensors only, loaded with `weights_only=True`) and `state.json` (step, config, counters).
The last good checkpoint is only replaced by a new one that has been read back and checked finite.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from keypaint.errors import KeypaintError

CURRENT = "checkpoint"
PREVIOUS = "checkpoint.old"  # only exists for the instant between two renames
FILES = ("model.safetensors", "ema.safetensors", "optimizer.pt", "state.json")


class CheckpointError(KeypaintError):
    """A checkpoint that cannot be written or read back; the previous good one is kept."""


@dataclass
class Checkpoint:
    """What a training run needs to continue exactly where it stopped."""

    model: dict[str, torch.Tensor]  # the trained weights, fp32
    ema: dict[str, torch.Tensor]  # EMA shadow weights, same keys as `model`'s parameters
    optimizer: dict[str, Any]  # optimizer.state_dict()
    state: dict[str, Any]  # JSON: step, elapsed seconds, config, EMA counters, ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(folder: Path, ckpt: Checkpoint) -> None:
    folder.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in ckpt.model.items()}, str(folder / FILES[0]))
    save_file({k: v.detach().contiguous().cpu() for k, v in ckpt.ema.items()}, str(folder / FILES[1]))
    torch.save(ckpt.optimizer, folder / FILES[2])
    (folder / FILES[3]).write_text(json.dumps(ckpt.state, indent=1), encoding="utf-8")
    for name in FILES:
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(folder)


def read_checkpoint(folder: Path) -> Checkpoint:
    """Load and check a checkpoint folder; raises CheckpointError naming what is wrong."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder}: incomplete checkpoint, missing {', '.join(missing)}")
    try:
        model = load_file(str(folder / FILES[0]))
        ema = load_file(str(folder / FILES[1]))
        optimizer = torch.load(folder / FILES[2], map_location="cpu", weights_only=True)
        state = json.loads((folder / FILES[3]).read_text(encoding="utf-8"))
    except Exception as exc:  # any parse failure means the same thing: this folder is not usable
        raise CheckpointError(f"{folder}: unreadable checkpoint ({exc})") from exc
    for name, tensors in (("model", model), ("ema", ema)):
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(f"{folder}: {name} weights are not finite ({bad[0]} ...)")
    if not isinstance(state.get("step"), int) or not math.isfinite(float(state.get("loss", 0.0))):
        raise CheckpointError(f"{folder}: state.json has no step or a non-finite loss")
    return Checkpoint(model, ema, optimizer, state)


def save_checkpoint(run_dir: Path, ckpt: Checkpoint) -> Path:
    """Write `ckpt` to run_dir/checkpoint atomically: temp folder, read back and check, then rename."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{CURRENT}-{ckpt.state['step']}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp, ckpt)
        read_checkpoint(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    current, previous = run_dir / CURRENT, run_dir / PREVIOUS
    if current.exists():
        shutil.rmtree(previous, ignore_errors=True)
        current.rename(previous)
    tmp.rename(current)
    _fsync_dir(run_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return current


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint to resume from: `checkpoint`, or `checkpoint.old` if a kill hit between renames."""
    for name in (CURRENT, PREVIOUS):
        if (run_dir / name / FILES[3]).is_file():
            return run_dir / name
    return None
