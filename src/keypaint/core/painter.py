"""`Painter`: loads a model once and turns `GenerationParams` into pictures.

Every front end (CLI, Python API, server, web page) builds params and calls `Painter.generate`. The
reverse chain itself is run by diffusers' pipelines (`pipeline_run`), fed with keypaint's own prompt
embeddings (A1111 emphasis and chunking) and with noise drawn on the CPU from the seed, so that a seed
means the same picture on every machine.

With `SpeedOptions(fast=True, frozen=True)` on a CPU, the built-in model starts from its frozen bundle
(`keypaint.core.frozen`): the same pictures from ONNX Runtime and numpy, without importing PyTorch or
diffusers. A request the bundle does not cover (a LoRA, img2img, a new size or sampler) loads the full
model then, and that run adds what it used to the bundle for the next process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from keypaint.core.events import (
    Interrupted,
    StepCallback,
    StepEvent,
    StopCheck,
    raise_with_finished,
    reporter,
)
from keypaint.core.params import GenerationParams, Limits
from keypaint.core.result import GeneratedImage
from keypaint.core.speed.options import SpeedOptions, approximations
from keypaint.errors import Cancelled
from keypaint.prompts.vocabulary import expansion_record

if TYPE_CHECKING:
    import torch

    from keypaint.core.adapters import Adapters, Plan
    from keypaint.core.frozen.model import FrozenModel
    from keypaint.core.frozen.record import BundleRecorder
    from keypaint.core.pipeline_run import PipelineRun
    from keypaint.core.speed import Accelerated
    from keypaint.models.loaded import LoadedModel
    from keypaint.provenance.policy import ContentPolicy
    from keypaint.scorer import Scorer

__all__ = ["GeneratedImage", "Interrupted", "Painter", "StepEvent"]  # imported from here too


class Painter:
    """Holds one model on one device and runs generation requests against it.

    Give it a loaded `model`, or (`Painter.load` does this) a frozen bundle and a `loader` that makes the
    full model when a request needs it.
    """

    def __init__(
        self,
        model: LoadedModel | None = None,
        *,
        limits: Limits = Limits(),
        scorer: Scorer | None = None,
        policy: ContentPolicy | None = None,  # blocked keywords, refused in resolve before any compute
        speed: SpeedOptions | None = None,  # fast path, approximate speed-ups, low memory (core.speed)
        home: Path | None = None,  # where LoRAs and embeddings named without a path are found
        frozen: FrozenModel | None = None,  # the built-in model's frozen bundle (CPU fast path)
        loader: Callable[[], LoadedModel] | None = None,  # makes the full model on first need
        device: str | None = None,  # the device `loader` will load onto (None: auto), for `plan`
    ) -> None:
        if model is None and loader is None:
            raise ValueError("a Painter needs a model or a loader")
        self.options = speed or SpeedOptions()
        self.options.validate()  # the one check of the speed options, before any model loads
        self.limits = limits
        self.policy = policy
        self.home = home
        self.frozen = frozen
        self._device = device
        self._loader = loader
        self._model: LoadedModel | None = None
        self._adapters: Adapters | None = None
        self._run: PipelineRun | None = None
        self._recorder: BundleRecorder | None = None  # writes the frozen bundle after fast-path runs
        self._scorer = scorer  # the shipped scorer is loaded on the first best-of request if None
        if model is not None:
            self._attach(model)

    def _attach(self, model: LoadedModel) -> None:
        from keypaint.core.adapters import Adapters
        from keypaint.core.pipeline_run import PipelineRun
        from keypaint.core.speed import accelerate

        self._adapters = Adapters(model, self.home)
        self._run = PipelineRun(model, accelerate(model.pipe, self.options))
        self._model = model

    def _full(self) -> PipelineRun:
        """The loaded model's pipelines, loading the model now if this Painter started frozen."""
        if self._run is None:
            assert self._loader is not None
            self._attach(self._loader())
        assert self._run is not None
        return self._run

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        vae: str | Path | None = None,
        allow_pickle: bool = False,
        home: Path | None = None,
        limits: Limits = Limits(),
        speed: SpeedOptions | None = None,
        before_loading: Callable[[], None] | None = None,
        max_model_bytes: int | None = None,
        lazy: bool = False,
    ) -> Painter:
        """Load `model` (None: the built-in model; a name in the model folder; a file or diffusers folder).

        The model (and `vae`) are checked first without PyTorch (`models.preflight`: pickles, headers, the
        size limit `max_model_bytes`), so a bad one is refused in milliseconds. The content policy of `home`
        (blocked keywords) applies to every request. With `speed.frozen`, the built-in model on a CPU starts
        from its frozen bundle if a run left one. `before_loading` runs just before the full model loads
        (the CLI quiets loading progress bars). With `lazy`, the model loads on first need, so that
        `plan` can refuse a request first (the CLI does this).
        """
        from keypaint.models.preflight import check_model, check_vae
        from keypaint.provenance.policy import ContentPolicy

        check_model(model, home=home, allow_pickle=allow_pickle, max_bytes=max_model_bytes)
        if vae is not None:
            check_vae(vae, home=home, allow_pickle=allow_pickle, max_bytes=max_model_bytes)

        policy = ContentPolicy.load(home)

        def full() -> LoadedModel:
            from keypaint.core.devices import pick_device, pick_dtype
            from keypaint.models.loader import load_model

            if before_loading is not None:
                before_loading()
            torch_device = pick_device(device)
            torch_dtype = pick_dtype(torch_device, dtype)
            return load_model(
                model, home=home, vae=vae, allow_pickle=allow_pickle, device=torch_device, dtype=torch_dtype,
                max_bytes=max_model_bytes,
            )

        painter = cls(None, limits=limits, policy=policy, home=home, speed=speed, loader=full, device=device)
        if model is None and vae is None and speed is not None and speed.frozen:
            from keypaint.core.frozen.model import open_builtin

            painter.frozen = open_builtin(speed, home, device, dtype)
        if painter.frozen is None and not lazy:
            painter._full()
        return painter

    @property
    def model(self) -> LoadedModel:
        """The loaded model (loaded now if this Painter started from a frozen bundle)."""
        self._full()
        assert self._model is not None
        return self._model

    @property
    def speed(self) -> Accelerated:
        return self._full().speed

    @property
    def adapters(self) -> Adapters:
        self._full()
        assert self._adapters is not None
        return self._adapters

    @property
    def base_scheduler_config(self) -> dict[str, Any]:
        """The model's training schedule (betas, prediction type) every sampler is built from."""
        return dict(self._full().base_scheduler_config)

    @property
    def device(self) -> torch.device:
        return self.model.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.pipe.unet.dtype

    @property
    def native_size(self) -> int:
        """The picture size the model was trained at (a request without a size gets it)."""
        if self.frozen is not None and not self.loaded:
            return self.frozen.native_size
        return self.model.native_size

    @property
    def loaded(self) -> bool:
        """False while a frozen Painter has not needed its full model."""
        return self._model is not None

    def plan(self, params: GenerationParams) -> Plan:
        """Refuse what cannot run before any weights load (core.planning): the content policy, the params
        against the limits, the LoRA and embedding files named, LoRAs on a fast path. Returns those files."""
        from keypaint.core.planning import plan_request

        backend = self._run.speed.backend if self._run is not None else None
        return plan_request(params, limits=self.limits, policy=self.policy, home=self.home,
                            options=self.options, device=self._device, backend=backend)

    def resolve(self, params: GenerationParams) -> GenerationParams:
        """Check `params` (`plan`), then against this model, and fill in what they leave open (seed, size)."""
        from keypaint.core.planning import fill_in

        files = self.plan(params)
        resolved = fill_in(params, self.native_size, self.limits)
        if self.frozen is not None and not self.loaded and not files.loras and not files.embeddings:
            return resolved  # the frozen bundle can run it: no model to check adapters against
        self.adapters.fit(files)  # LoRA and embedding files fit this model
        return resolved

    def generate(
        self,
        params: GenerationParams,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[GeneratedImage]:
        """Run `params`: batch_count batches of batch_size pictures; picture i uses seed + i."""
        params = self.resolve(params)
        if params.best_of > 1:
            return self._best_of(params, on_step, should_stop)
        frozen = self._generate_frozen(params, on_step, should_stop)
        if frozen is not None:
            return frozen
        run = self._full()
        seeds = params.seeds()
        # 1. apply the LoRAs asked for, and encode the keywords (with any embeddings) once for the whole run
        active = self.adapters.activate(params)
        prompt = active.prompt
        if params.expand_keywords:
            expansion = self.model.expand(active.prompt, skip=active.names)
            prompt = expansion.prompt
            active.extra.update(expansion_record(active.prompt, expansion))
        from keypaint.core.devices import dtype_name
        from keypaint.prompts.encode import encode_prompts

        embeds = encode_prompts(
            self.model, prompt, active.negative_prompt, device=self.device, dtype=self.dtype,
            embeddings=active.embeddings,
        )
        results: list[GeneratedImage] = []
        try:
            for batch in range(params.batch_count):
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")
                batch_seeds = seeds[batch * params.batch_size : (batch + 1) * params.batch_size]
                images = run.run_batch(
                    params, batch_seeds, embeds, reporter(on_step, batch, params.batch_count), should_stop
                )
                made = self._results(params, batch, batch_seeds, images, active.extra, str(self.device),
                                     dtype_name(self.dtype))
                for result in made:  # approximations change the picture: record them beside the params
                    result.extra.update(approximations(self.speed.options))
                results += made
        except Cancelled:
            raise_with_finished(results)
        self._record(params, active.prompt == params.prompt and not active.embeddings)
        return results

    def _generate_frozen(
        self, params: GenerationParams, on_step: StepCallback | None, should_stop: StopCheck | None
    ) -> list[GeneratedImage] | None:
        """The run from the frozen bundle, or None when the bundle does not cover it (or is not there)."""
        if self.frozen is None or self.loaded:  # resolve() loaded the model for a request with adapters
            return None
        prompt, extra = params.prompt, {}
        if params.expand_keywords:
            expansion = self.frozen.expand(params.prompt)
            prompt, extra = expansion.prompt, expansion_record(params.prompt, expansion)
        jobs = {}
        for size in {params.batch_size, params.total_images - (params.batch_count - 1) * params.batch_size}:
            job = self.frozen.prepare(params, prompt, size)
            if job is None:
                return None
            jobs[size] = job
        seeds = params.seeds()
        results: list[GeneratedImage] = []
        try:
            for batch in range(params.batch_count):
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")
                batch_seeds = seeds[batch * params.batch_size : (batch + 1) * params.batch_size]
                report = reporter(on_step, batch, params.batch_count)

                def on_latents(k: int, latents: Any, report: Any = report) -> None:
                    if report is not None:
                        report(k + 1, params.steps, latents, None)

                images = self.frozen.run(jobs[len(batch_seeds)], batch_seeds, on_latents, should_stop)
                results += self._results(params, batch, batch_seeds, images, extra, "cpu", "fp32")
        except Cancelled:
            raise_with_finished(results)
        return results

    def _record(self, params: GenerationParams, plain_prompt: bool) -> None:
        """After a CPU fast-path txt2img run of the built-in model, add what it used to the frozen bundle."""
        run = self._full()
        if not (self.options.frozen and run.speed.backend == "onnxruntime" and params.mode == "txt2img"
                and plain_prompt and not params.loras):
            return
        if self._recorder is None:
            from keypaint.builtin import WEIGHTS_DIR
            from keypaint.core.frozen.record import BundleRecorder
            from keypaint.core.speed.artefacts import default_cache_dir

            source = run.model.source
            if source is None or Path(source).resolve() != WEIGHTS_DIR.resolve():
                return
            cache = self.options.cache_dir or default_cache_dir(self.home)
            self._recorder = BundleRecorder(cache, run.model)
        self._recorder.record(run.speed, params.sampler, params.steps, run.base_scheduler_config)

    def _results(self, params: GenerationParams, batch: int, seeds: list[int], images: list[Image.Image],
                 extra: dict[str, Any], device: str, dtype: str) -> list[GeneratedImage]:
        name, sha = ((self.model.name, self.model.sha256) if self.loaded or self.frozen is None
                     else (self.frozen.name, self.frozen.sha256))
        return [
            GeneratedImage(
                image=image, seed=seed, params=replace(params, seed=seed, batch_size=1, batch_count=1),
                index=batch * params.batch_size + offset, model_name=name, model_hash=sha,
                device=device, dtype=dtype, extra=dict(extra),
            )
            for offset, (seed, image) in enumerate(zip(seeds, images, strict=True))
        ]

    def _best_of(
        self, params: GenerationParams, on_step: StepCallback | None, should_stop: StopCheck | None
    ) -> list[GeneratedImage]:
        """For picture k, paint `best_of` candidates (seeds seed + k*N ...) and keep the best match.

        The kept picture's params name its own seed, so it can be re-made alone without the search.
        """
        if self._scorer is None:
            from keypaint.scorer import Scorer

            self._scorer = Scorer.load(None, device=self.device)
        from keypaint.scorer import pick_best

        n = params.best_of
        kept: list[GeneratedImage] = []
        for k in range(params.total_images):
            assert params.seed >= 0
            candidates = replace(params, seed=params.seed + k * n, batch_size=n, batch_count=1, best_of=1)
            try:
                results = self.generate(candidates, on_step=on_step, should_stop=should_stop)
            except Cancelled:  # a picture's candidates cut short are no pick: only the kept ones count
                raise_with_finished(kept)
            best, scores = pick_best(self._scorer, [r.image for r in results], params.prompt)
            winner = results[best]
            winner.index = k
            winner.extra.update({"Match score": round(float(scores[best]), 4), "Best of": n})
            kept.append(winner)
        return kept
