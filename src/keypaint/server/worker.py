"""The worker: one thread that runs queued jobs in order through the one `Painter`.

Jobs come from the store's queue (SQLite, or PostgreSQL shared with other processes that claim jobs from
it too), so the order survives restarts. A running job is stopped between
denoising steps (`should_stop`) when it is cancelled, interrupted, or its synchronous client leaves.
A job that fails, out-of-memory included, fails alone: the worker reports it and takes the next one.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from keypaint.core.painter import GeneratedImage, Interrupted, Painter, StepEvent
from keypaint.core.params import GenerationParams
from keypaint.core.sizes import paints_native_for_a1111, size_warning, upscaled
from keypaint.errors import Cancelled, KeypaintError
from keypaint.outputs.remote import RemoteFile, RemoteFolder
from keypaint.outputs.results import infotext_for, metadata_for, save_generated
from keypaint.outputs.saving import output_dir
from keypaint.server.config import ServerConfig
from keypaint.server.finetune_runner import run_finetune
from keypaint.server.finetune_spec import FinetuneSpec
from keypaint.server.job_store import JobKind, JobRecord, JobStatus
from keypaint.server.models import ModelHost
from keypaint.server.spec import JobSpec
from keypaint.server.stores import Store
from keypaint.server.uploads import open_picture, preview_png

log = logging.getLogger("keypaint.server")


@dataclass
class Progress:
    """What the running job has done so far; read by /progress and the event streams."""

    job_id: str
    started: float
    step: int = 0
    steps: int = 0
    batch: int = 0
    batches: int = 1
    preview: bytes | None = None  # small PNG of the current latents
    preview_step: int = 0
    loss: float | None = None  # fine-tuning jobs: the last step's loss and the seconds left
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        if not self.steps:
            return 0.0
        return min(1.0, (self.batch * self.steps + self.step) / (self.steps * self.batches))


@dataclass
class Outcome:
    """A finished job's pictures, kept in memory for the synchronous A1111 request waiting on it."""

    done: threading.Event = field(default_factory=threading.Event)
    images: list[GeneratedImage] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    paths: list[Path | RemoteFile] = field(default_factory=list)  # where they were saved (A1111's)
    warnings: list[str] = field(default_factory=list)  # e.g. a size far from the model's native one
    error: str | None = None
    status: str = "queued"


class Worker:
    """Owns the queue's consumer thread and the state the HTTP side reads."""

    trains = True  # runs fine-tuning jobs (server.finetune_runner) as well as painting ones

    def __init__(self, store: Store, host: ModelHost, config: ServerConfig) -> None:
        self.store = store
        self.host = host
        self.config = config
        self.version = 0  # bumped on every change, so event streams know when to look again
        self.progress: Progress | None = None
        self._recent: OrderedDict[str, Progress] = OrderedDict()  # last progress of finished jobs
        self._cancel: dict[str, threading.Event] = {}
        self._claiming = threading.Lock()  # a cancel waits while a job is claimed, so it never misses it
        self._outcomes: dict[str, Outcome] = {}
        self._pending = threading.Event()  # set whenever a job may have been queued
        self._stopping = threading.Event()
        self._remote = RemoteFolder(config.out_url) if config.out_url else None  # serve --out URL
        self._thread = threading.Thread(target=self._loop, name="keypaint-worker", daemon=True)

    # --- called from request handlers -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; the running one is stopped at its next step and marked failed."""
        self._stopping.set()
        self._pending.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for outcome in list(self._outcomes.values()):  # synchronous callers still waiting get an answer
            if not outcome.done.is_set():
                outcome.status, outcome.error = "failed", "the server is stopping"
                outcome.done.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def submit(self, kind: JobKind, spec: JobSpec | FinetuneSpec, *, init_image: bytes | None = None,
               mask: bytes | None = None, job_id: str | None = None) -> tuple[JobRecord, Outcome | None]:
        """Queue a job (`QueueFull` when there is no room); synchronous kinds get an `Outcome` to wait on."""
        job_id = job_id or uuid.uuid4().hex
        outcome = Outcome() if kind == "sdapi" else None
        if outcome is not None:
            self._outcomes[job_id] = outcome  # before the job exists, so the worker always finds it
        try:
            job = self.store.add_job(kind, spec.to_json(), init_image=init_image, mask=mask,
                                     max_queue=self.config.max_queue, job_id=job_id)
        except BaseException:
            self._outcomes.pop(job_id, None)
            raise
        self._bump()
        self._pending.set()
        return job, outcome

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or stop the running one at its next step; False if neither."""
        with self._claiming:
            if self.store.cancel_queued(job_id):
                self._settle(job_id, "cancelled", error="cancelled")
                self._bump()
                return True
            event = self._cancel.get(job_id)
            if event is not None:
                event.set()
                return True
            return self.store.request_cancel(job_id)  # running in another process of a shared store

    def interrupt(self) -> str | None:
        """Stop whatever is running (A1111's /interrupt); the job's id, or None if idle."""
        progress = self.progress
        if progress is None:
            return None
        self.cancel(progress.job_id)
        return progress.job_id

    def progress_of(self, job_id: str) -> Progress | None:
        """The running job's progress, or where a recently finished job got to (its last preview too)."""
        progress = self.progress
        if progress is not None and progress.job_id == job_id:
            return progress
        return self._recent.get(job_id)

    def forget(self, job_id: str) -> None:
        self._outcomes.pop(job_id, None)

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free: about one job's run time."""
        durations = self.store.recent_durations()
        mean = sum(durations) / len(durations) if durations else 5.0
        return max(1, round(mean + 0.5))

    # --- the thread -------------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.version += 1

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._pending.clear()  # before looking: a job queued after this sets it again
            with self._claiming:
                job = self.store.claim(self.store.owner)
                if job is not None:
                    self._cancel[job.id] = threading.Event()
            if job is None:
                if self.store.shared:  # jobs of other processes change under us: streams look again
                    self._bump()
                self._pending.wait(timeout=self.store.poll_s)
                continue
            self.run_claimed(job)

    def run_claimed(self, job: JobRecord) -> None:
        """Run `job`, which the store has marked running as ours, to its end (never raises)."""
        self._cancel.setdefault(job.id, threading.Event())
        self.progress = Progress(job.id, time.time())
        self._bump()
        try:
            if job.kind == "finetune":
                self._run_finetune(job)
            else:
                self._run(job)
        finally:
            self._cancel.pop(job.id, None)
            self._recent[job.id] = self.progress
            while len(self._recent) > 64:
                self._recent.popitem(last=False)
            self.progress = None
            self._bump()

    def run_to_outcome(self, job: JobRecord) -> Outcome:
        """Run a claimed job here and hand back its outcome (keypaint.cluster's Painter replicas)."""
        outcome = self._outcomes.setdefault(job.id, Outcome())
        try:
            self.run_claimed(job)
        finally:
            self._outcomes.pop(job.id, None)
        return outcome

    def _run(self, job: JobRecord) -> None:
        spec = JobSpec.from_json(job.spec)
        cancel = self._cancel[job.id]
        progress = self.progress
        assert progress is not None
        target: tuple[int, int] | None = None  # A1111's default size on a smaller model: upscaled to it
        warnings: list[str] = []
        native = 0  # the model's native size, once it is in use
        try:
            limit = self.config.max_image_pixels
            init = open_picture(job.init_image, "init_image", max_pixels=limit) if job.init_image else None
            mask = open_picture(job.mask, "mask", max_pixels=limit) if job.mask else None
            with self.host.use(spec.model) as painter:
                kind, vae = painter.model.kind, painter.model.pipe.vae
                native = painter.native_size
                last_preview = 0.0

                def on_step(event: StepEvent) -> None:
                    nonlocal last_preview
                    progress.step, progress.steps = event.step, event.steps
                    progress.batch, progress.batches = event.batch, event.batches
                    now = time.monotonic()
                    if now - last_preview >= self.config.preview_interval_s or event.step == event.steps:
                        last_preview = now
                        try:
                            progress.preview = preview_png(_x0_or_xt(event), kind, vae)
                            progress.preview_step = event.step
                        except Exception:  # a preview is a nicety: it never fails the job
                            log.exception("preview of job %s failed", job.id)
                    self._bump()

                asked = _CancelWatch(self.store, job.id)

                def should_stop() -> bool:
                    return cancel.is_set() or self._stopping.is_set() or asked()

                params, target = _sized(painter, spec, spec.with_pictures(init, mask))
                results = painter.generate(params, on_step=on_step, should_stop=should_stop)
                warnings = _size_warnings(results, native)
            if target is not None:
                results = [upscaled(result, *target) for result in results]
            self._succeed(job, spec, results, warnings)
        except Interrupted as exc:  # stopped after some batches: keep what was finished, as A1111 does
            if self._stopping.is_set() and not cancel.is_set():
                self._fail(job.id, "the server stopped while this job was running", progress)
            else:
                done = exc.done if target is None else [upscaled(result, *target) for result in exc.done]
                self._succeed(job, spec, done, _size_warnings(exc.done, native), status="cancelled")
        except Cancelled:
            if self._stopping.is_set() and not cancel.is_set():
                self._fail(job.id, "the server stopped while this job was running", progress)
            else:
                self._fail(job.id, "cancelled", progress, status="cancelled")
        except KeypaintError as exc:
            self._fail(job.id, str(exc), progress)
        except Exception as exc:  # any other failure ends this job only; the server goes on
            if _out_of_memory(exc):
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self._fail(job.id, f"out of memory: ask for fewer or smaller pictures ({first[:200]})",
                           progress)
                return
            log.exception("job %s failed", job.id)
            self._fail(job.id, f"{exc.__class__.__name__}: {exc}"[:500], progress)

    def _run_finetune(self, job: JobRecord) -> None:
        cancel, asked, progress = self._cancel[job.id], _CancelWatch(self.store, job.id), self.progress
        assert progress is not None
        status, error, info = run_finetune(
            job, self.host, self.config, progress, changed=self._bump, cancelled=cancel.is_set,
            should_stop=lambda: cancel.is_set() or self._stopping.is_set() or asked())
        self.store.finish(job.id, status, error=error, info=info)
        self._settle(job.id, status, error=error)

    def _succeed(self, job: JobRecord, spec: JobSpec, results: list[GeneratedImage],
                 warnings: list[str], status: JobStatus = "succeeded") -> None:
        """Save and record `results`; a job cancelled after some batches keeps those ("cancelled")."""
        infotexts = [infotext_for(r) for r in results]
        image_ids: list[int] = []
        paths: list[Path | RemoteFile] = []
        if spec.save:
            for result, infotext in zip(results, infotexts, strict=True):
                path, name = self._save(result)
                paths.append(path)
                width, height = result.image.size
                image_ids.append(self.store.add_image(
                    job.id, name, seed=result.seed, width=width,
                    height=height, infotext=infotext, metadata=metadata_for(result), spec=spec.to_json(),
                ))
        info = {**_run_info(results, infotexts), "warnings": warnings}
        error = "cancelled" if status == "cancelled" else None
        self.store.finish(job.id, status, image_ids=image_ids, info=info, error=error)
        outcome = self._outcomes.get(job.id)
        if outcome is not None:
            outcome.images, outcome.infotexts, outcome.paths = results, infotexts, paths
            outcome.warnings = warnings
        self._settle(job.id, status, error=error)

    def _save(self, result: GeneratedImage) -> tuple[Path | RemoteFile, str]:
        """Write one picture to OUT/YYYY-MM-DD (or the --out URL's); where it is, and its name under OUT."""
        if self._remote is not None:
            saved = self._remote.save(result)
            return saved, saved.relative
        path = save_generated(result, output_dir(self.config.out))
        return path, path.relative_to(self.config.out).as_posix()

    def _fail(self, job_id: str, error: str, progress: Progress, status: JobStatus = "failed") -> None:
        info = {"steps_done": progress.step, "batch": progress.batch}
        self.store.finish(job_id, status, error=error, info=info)
        self._settle(job_id, status, error=error)

    def _settle(self, job_id: str, status: str, error: str | None = None) -> None:
        outcome = self._outcomes.get(job_id)
        if outcome is not None:
            outcome.status, outcome.error = status, error
            outcome.done.set()


WorkerFactory = Callable[[Store, ModelHost, ServerConfig], Worker]


class _CancelWatch:
    """Whether a shared store was asked to cancel this job from another process (read at most twice a
    second, so a step costs no query)."""

    def __init__(self, store: Store, job_id: str, every_s: float = 0.5) -> None:
        self._store, self._job_id, self._every_s = store, job_id, every_s
        self._next = time.monotonic() + every_s

    def __call__(self) -> bool:
        if not self._store.shared or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self._every_s
        return self._store.cancel_requested(self._job_id)


def _sized(painter: Painter, spec: JobSpec, params: GenerationParams
           ) -> tuple[GenerationParams, tuple[int, int] | None]:
    """The params to paint (`Painter.generate` checks them) and the size to upscale to (A1111's default
    size on a smaller model)."""
    native, target = painter.native_size, None
    width, height = spec.params.width, spec.params.height
    if spec.fit_native and paints_native_for_a1111(width, height, native):
        assert width is not None and height is not None
        target, params = (width, height), replace(params, width=native, height=native)
    return params, target


def _size_warnings(results: list[GeneratedImage], native: int) -> list[str]:
    """What the size the pictures were painted at means for this model (core.sizes)."""
    if not results:
        return []
    params = results[0].params
    assert params.width is not None and params.height is not None
    warning = size_warning(params.width, params.height, native)
    return [warning] if warning else []


def _out_of_memory(exc: Exception) -> bool:
    """CUDA's OutOfMemoryError, a host MemoryError, or MPS's RuntimeError saying so."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _run_info(results: list[GeneratedImage], infotexts: list[str]) -> dict[str, Any]:
    first = results[0] if results else None
    return {
        "seeds": [r.seed for r in results],
        "infotexts": infotexts,
        "width": first.image.width if first else None,
        "height": first.image.height if first else None,
        "model": first.model_name if first else None,
        "model_hash": first.model_hash if first else None,
    }


def _x0_or_xt(event: StepEvent) -> torch.Tensor:
    """The step's x_0 estimate (what the picture is becoming); x_t where there is none."""
    return event.denoised if event.denoised is not None else event.latents
