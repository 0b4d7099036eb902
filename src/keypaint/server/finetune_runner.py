"""A queued fine-tuning job (POST /api/finetune), run by the worker on the model the server paints with.

The run holds the device as a painting job does (`ModelHost.use`), so jobs still run one at a time, and it
trains the loaded model itself: `keypaint.finetune.train.finetune` adds LoRA layers (or new token vectors)
to it and takes them off again, so one model's worth of memory serves both. A model loaded in fp16 or bf16
(GPU servers) is cast to fp32 for the run, as `keypaint finetune` trains, and back after it. Each step
updates the job's progress (step, loss, ETA); each sample picture (every `finetune_sample_every` steps and
at the last) becomes its preview. A cancel stops the run after the step in progress: no output file is
written and the run's checkpoints are removed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from keypaint.core.adapters import embeddings_dir, loras_dir
from keypaint.errors import Cancelled, KeypaintError
from keypaint.models.loaded import LoadedModel
from keypaint.server.config import ServerConfig
from keypaint.server.finetune_spec import FinetuneSpec, job_folder
from keypaint.server.job_store import JobRecord, JobStatus
from keypaint.server.models import ModelHost
from keypaint.server.uploads import png_bytes

if TYPE_CHECKING:
    from keypaint.server.worker import Progress

log = logging.getLogger("keypaint.server")
PREVIEW_SIDE = 256  # the sample picture as the job's preview, at most this many pixels a side
Ending = tuple[JobStatus, str | None, dict[str, Any]]  # the job's status, error and info


def run_finetune(job: JobRecord, host: ModelHost, config: ServerConfig, progress: Progress, *,
                 should_stop: Callable[[], bool], cancelled: Callable[[], bool],
                 changed: Callable[[], None]) -> Ending:
    """Train job `job` to its end (never raises): `should_stop()` is asked after every step, `cancelled()`
    tells a cancel from the server stopping, `changed()` after every step for the event streams."""
    spec = FinetuneSpec.from_json(job.spec)
    folder = job_folder(config.home, job.id)
    try:
        info = _train(spec, job.id, host, config, progress, should_stop, changed)
    except Cancelled:
        shutil.rmtree(folder / "run", ignore_errors=True)  # checkpoints: partial weights nobody asked for
        if cancelled():
            return "cancelled", "cancelled", {"steps_done": progress.step}
        return "failed", "the server stopped while this job was running", {"steps_done": progress.step}
    except (KeypaintError, ValueError) as exc:  # ValueError: a method this keypaint no longer knows
        return "failed", _path_free(str(exc), config, folder), {"steps_done": progress.step}
    except Exception as exc:  # any other failure ends this job only; the server goes on
        log.exception("fine-tuning job %s failed", job.id)
        message = _path_free(f"{exc.__class__.__name__}: {exc}", config, folder)[:500]
        return "failed", message, {"steps_done": progress.step}
    return "succeeded", None, info


def _train(spec: FinetuneSpec, job_id: str, host: ModelHost, config: ServerConfig, progress: Progress,
           should_stop: Callable[[], bool], changed: Callable[[], None]) -> dict[str, Any]:
    from keypaint.finetune.train import finetune

    cfg = spec.config(config.home, job_id, config.finetune_sample_every)
    samples = cfg.run_dir / "samples" if cfg.run_dir is not None else None
    progress.steps = cfg.steps
    first: tuple[int, float] | None = None  # the first step seen and when: the ETA's start
    shown: Path | None = None

    def on_step(step: int, loss: float) -> None:
        nonlocal first, shown
        if should_stop():
            raise Cancelled("cancelled")
        now = time.monotonic()
        first = first or (step, now)
        progress.step, progress.loss = step, loss
        if step > first[0]:
            progress.eta_s = round((now - first[1]) / (step - first[0]) * (cfg.steps - step), 1)
        newest = max(samples.glob("*.png"), default=None) if samples and samples.is_dir() else None
        if newest is not None and newest != shown:
            shown = newest
            progress.preview, progress.preview_step = _preview(newest), step
        changed()

    if should_stop():
        raise Cancelled("cancelled")
    with host.use(spec.model) as painter, trainable(painter.model) as model:
        result = finetune(cfg, model=model, on_step=on_step, progress=False, log=log.info)
    kind = {loras_dir(config.home): "lora", embeddings_dir(config.home): "embedding"}.get(result.path.parent,
                                                                                          "file")
    return {"name": result.path.stem, "kind": kind, "token": result.token, "method": result.method,
            "model": spec.model, "steps": result.steps, "loss": result.loss, "bytes": result.bytes,
            "seconds": round(result.seconds, 1), "device": result.device, "samples": len(result.samples),
            "note": result.note}


@contextmanager
def trainable(model: LoadedModel) -> Iterator[LoadedModel]:
    """`model` in fp32 while it trains (its modules cast back to their own dtypes after), with its LoRA
    layers switched on: a painting job without LoRAs switches them off, and a new adapter trained through
    switched-off layers would learn nothing."""
    modules = {name: m for name, m in model.pipe.components.items() if isinstance(m, torch.nn.Module)}
    dtypes = {name: p.dtype for name, m in modules.items() if (p := next(m.parameters(), None)) is not None}
    for name, dtype in dtypes.items():
        if dtype != torch.float32:
            modules[name].to(dtype=torch.float32)
    denoiser = model.denoiser
    if getattr(denoiser, "peft_config", None):
        denoiser.enable_adapters()
    try:
        yield model
    finally:
        for name, dtype in dtypes.items():
            if dtype != torch.float32:
                modules[name].to(dtype=dtype)


def _preview(path: Path) -> bytes:
    with Image.open(path) as image:
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return png_bytes(image.convert("RGB"))


def _path_free(message: str, config: ServerConfig, folder: Path) -> str:
    """`message` without the server's folders (a client sees names, never paths)."""
    for path in (folder / "pictures", folder, loras_dir(config.home), embeddings_dir(config.home)):
        message = message.replace(f"{path}/", "").replace(str(path), "")
    return message
