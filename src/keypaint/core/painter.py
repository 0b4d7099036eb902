"""`Painter`: loads a model once and turns `GenerationParams` into pictures.

Every front end (CLI, Python API, server, web page) builds params and calls `Painter.generate`. The
reverse chain itself is run by an engine (`core.engine`): the loaded model through diffusers' pipelines
(`diffusers_engine`, `pipeline_run`), fed with keypaint's own prompt embeddings (A1111 emphasis and
chunking) and with noise drawn on the CPU from the seed, so that a seed means the same picture on every
machine. Whoever builds the Painter hands it its best-of scorer and the built-in model's files.

With `SpeedOptions(fast=True, frozen=True)` on a CPU, the built-in model starts from its frozen bundle
(`keypaint.core.onnx_coldstart`): the same pictures from ONNX Runtime and numpy, without importing PyTorch or
diffusers. A request the bundle does not cover (a LoRA, img2img, a new size or sampler) loads the full
model then, and that run adds what it used to the bundle for the next process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
from keypaint.core.speed.options import SpeedOptions
from keypaint.errors import Cancelled, InvalidParams
from keypaint.models.upscalers import Upscalers

if TYPE_CHECKING:
    import torch

    from keypaint.core.adapters import Adapters, Plan
    from keypaint.core.diffusers_engine import DiffusersEngine
    from keypaint.core.engine import Engine, Job
    from keypaint.core.onnx_coldstart.model import ColdStartModel
    from keypaint.core.result import ResultWriter
    from keypaint.core.speed import Accelerated
    from keypaint.models.flow_files import ComponentFiles
    from keypaint.models.loaded import LoadedModel
    from keypaint.models.registry import BuiltinModel
    from keypaint.provenance.policy import ContentPolicy

__all__ = ["GeneratedImage", "Interrupted", "Painter", "PictureScorer", "StepEvent"]  # imported from here too


class PictureScorer(Protocol):
    """Rates pictures against their keywords for best-of (keypaint.scorer's `Scorer`, or `ShippedScorer`
    which loads the shipped one on first use). A Painter is handed one by whoever builds it."""

    def pick_best(self, images: list[Image.Image], prompt: str) -> tuple[int, Any]:
        """(index of the best-matching picture, every picture's score)."""
        ...


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
        scorer: PictureScorer | None = None,  # rates best-of candidates; without one best-of is refused
        policy: ContentPolicy | None = None,  # blocked keywords, refused in resolve before any compute
        speed: SpeedOptions | None = None,  # fast path, approximate speed-ups, low memory (core.speed)
        home: Path | None = None,  # where LoRAs and embeddings named without a path are found
        frozen: ColdStartModel | None = None,  # the built-in model's frozen bundle (CPU fast path)
        loader: Callable[[], LoadedModel] | None = None,  # makes the full model on first need
        device: str | None = None,  # the device `loader` will load onto (None: auto), for `plan`
        builtin: BuiltinModel | None = None,  # the built-in model: its shipped LoRAs, its frozen bundle
        writer: ResultWriter | None = None,  # what `GeneratedImage.save` calls (keypaint.api hands one)
        allow_pickle: bool = False,  # hires upscaler models shared as pickles are read (weights only)
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
        self._builtin = builtin
        self._writer = writer
        self.upscalers = Upscalers(home, allow_pickle=allow_pickle)  # the hires fix's model files
        self._full_engine: DiffusersEngine | None = None
        # the engines asked in turn to cover a request: the frozen bundle's until the full model loads
        self._engines: list[Engine[Any]] = []
        if frozen is not None:
            from keypaint.core.onnx_coldstart.engine import ColdStartEngine

            self._engines.append(ColdStartEngine(frozen))
        self._scorer = scorer
        if model is not None:
            self._attach(model)

    def _attach(self, model: LoadedModel) -> None:
        from keypaint.core.adapters import Adapters
        from keypaint.core.diffusers_engine import DiffusersEngine
        from keypaint.core.pipeline_run import PipelineRun
        from keypaint.core.speed import accelerate

        run = PipelineRun(model, accelerate(model.pipe, self.options))
        shipped = self._builtin.loras if self._builtin is not None else None
        adapters = Adapters(model, self.home, shipped_loras=shipped)
        self._full_engine = DiffusersEngine(model, run, adapters, self.options, self.home, self._builtin,
                                            self.upscalers)
        self._engines = [self._full_engine]  # once loaded, the full model paints every request

    def _full(self) -> DiffusersEngine:
        """The loaded model's engine, loading the model now if this Painter started frozen."""
        if self._full_engine is None:
            assert self._loader is not None
            self._attach(self._loader())
        assert self._full_engine is not None
        return self._full_engine

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
        scorer: PictureScorer | None = None,
        builtin: BuiltinModel | None = None,
        components: ComponentFiles | None = None,
    ) -> Painter:
        """Load `model` (None: the built-in model; a name in the model folder; a file or diffusers folder).

        The model (and `vae`) are checked first without PyTorch (`models.preflight`: pickles, headers, the
        size limit `max_model_bytes`), so a bad one is refused in milliseconds. The content policy of `home`
        (blocked keywords) applies to every request. With `speed.frozen`, the built-in model on a CPU starts
        from its frozen bundle if a run left one. `before_loading` runs just before the full model loads
        (the CLI quiets loading progress bars). With `lazy`, the model loads on first need, so that
        `plan` can refuse a request first (the CLI does this). `scorer` rates best-of candidates
        (`keypaint.scorer`); `builtin` is the built-in model (`keypaint.builtin.MODEL`), loaded when `model`
        is None, with its shipped LoRAs and its frozen bundle (`keypaint.Painter.load` hands both in).
        `components`: an SD3/Flux file's separate text encoders (`--clip-l`, `--clip-g`, `--t5`).
        """
        from keypaint.models.preflight import check_model, check_vae
        from keypaint.provenance.policy import ContentPolicy

        check_model(model, home=home, allow_pickle=allow_pickle, max_bytes=max_model_bytes,
                    components=components, vae=Path(vae) if vae is not None else None)
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
                max_bytes=max_model_bytes, builtin=builtin, components=components,
            )

        frozen = None
        if model is None and vae is None and speed is not None and speed.frozen:
            from keypaint.core.onnx_coldstart.model import open_builtin

            frozen = open_builtin(speed, home, device, dtype, builtin)
        painter = cls(None, limits=limits, scorer=scorer, policy=policy, home=home, speed=speed,
                      frozen=frozen, loader=full, device=device, builtin=builtin, allow_pickle=allow_pickle)
        if not painter._engines and not lazy:
            painter._full()
        return painter

    @property
    def model(self) -> LoadedModel:
        """The loaded model (loaded now if this Painter started from a frozen bundle)."""
        return self._full().model

    @property
    def speed(self) -> Accelerated:
        return self._full().run.speed

    @property
    def adapters(self) -> Adapters:
        return self._full().adapters

    @property
    def base_scheduler_config(self) -> dict[str, Any]:
        """The model's training schedule (betas, prediction type) every sampler is built from."""
        return dict(self._full().run.base_scheduler_config)

    @property
    def device(self) -> torch.device:
        return self.model.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.denoiser.dtype

    @property
    def native_size(self) -> int:
        """The picture size the model was trained at (a request without a size gets it)."""
        return (self._engines[0] if self._engines else self._full()).native_size

    @property
    def engines(self) -> list[Engine[Any]]:
        """The engines asked in turn to cover a request (core.engine): the frozen bundle's until the full
        model loads, then the full model's alone (an empty list while a lazy Painter has neither)."""
        return list(self._engines)

    @property
    def loaded(self) -> bool:
        """False while a frozen Painter has not needed its full model."""
        return self._full_engine is not None

    def plan(self, params: GenerationParams) -> Plan:
        """Refuse what cannot run before any weights load (core.planning): the content policy, the params
        against the limits, the LoRA and embedding files named, LoRAs on a fast path. Returns those files."""
        from keypaint.core.planning import plan_request

        backend = self._full_engine.run.speed.backend if self._full_engine is not None else None
        shipped = self._builtin.loras if self._builtin is not None else None
        controls = self._builtin.controls if self._builtin is not None else None
        files = plan_request(params, limits=self.limits, policy=self.policy, home=self.home,
                             options=self.options, device=self._device, backend=backend,
                             shipped_loras=shipped, shipped_controls=controls)
        if params.hires is not None and params.hires.is_model:
            self.upscalers.find(params.hires.upscaler)  # found, allowed, its header read
        return files

    def resolve(self, params: GenerationParams) -> GenerationParams:
        """Check `params` (`plan`), then against this model, and fill in what they leave open (seed, size)."""
        from keypaint.core.flow import resolve_flow
        from keypaint.core.planning import fill_in

        files = self.plan(params)
        resolved = fill_in(params, self.native_size, self.limits)
        # SD3/Flux: their samplers, guidance and sizes (core.flow); other models refuse flow settings
        resolved = resolve_flow(resolved, *self._flow_traits())
        if self._engines and not self.loaded and not files.loras and not files.embeddings:
            return resolved  # an engine without the model (the frozen bundle) may run it: nothing to check
        self.adapters.fit(files)  # LoRA and embedding files fit this model
        if params.control_units:
            self._full().check_control(params.control_units)  # ControlNets made for this model's family
        return resolved

    def _flow_traits(self) -> tuple[str, bool, int]:
        """(model family, takes distilled guidance, what picture sides must be a multiple of)."""
        if not self.loaded:
            return "keypaint", False, 8  # the frozen bundle paints the built-in model only
        model = self.model
        if not model.kind.is_flow:
            return model.kind.value, False, 8
        factor = int(model.pipe.vae_scale_factor) * (2 if model.kind.value == "flux" else 1)
        guidance = bool(getattr(model.pipe.transformer.config, "guidance_embeds", False))
        patch = int(getattr(model.pipe.transformer.config, "patch_size", 1))
        return model.kind.value, guidance, factor * patch

    def generate(
        self,
        params: GenerationParams,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> list[GeneratedImage]:
        """Run `params`: batch_count batches of batch_size pictures; picture i uses seed + i."""
        params = self.resolve(params)  # the one check of this request
        if params.best_of > 1:
            return self._best_of(params, on_step, should_stop)
        return self._paint(params, on_step, should_stop)

    def _paint(self, params: GenerationParams, on_step: StepCallback | None,
               should_stop: StopCheck | None) -> list[GeneratedImage]:
        """Run resolved `params` batch by batch on the first engine that covers them."""
        # outpainting runs as a plain inpaint request on the extended canvas, blended back after each batch
        work = params.outpaint.inpaint_request(params) if params.outpaint is not None else params
        engine, job = self._prepare(work)
        seeds = params.seeds()
        results: list[GeneratedImage] = []
        try:
            for batch in range(params.batch_count):
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")
                batch_seeds = seeds[batch * params.batch_size : (batch + 1) * params.batch_size]
                report = reporter(on_step, batch, params.batch_count)
                images = engine.run_batch(job, batch_seeds, report, should_stop)
                if params.outpaint is not None and work.init_image is not None:
                    images = [params.outpaint.blend(image, work.init_image) for image in images]
                results += self._results(engine, params, batch, batch_seeds, images, job.extra)
        except Cancelled:
            raise_with_finished(results)
        engine.finish(job)
        return results

    def _prepare(self, params: GenerationParams) -> tuple[Engine[Any], Job]:
        """The first engine that covers `params` (the full model's covers all), with its job."""
        for engine in self._engines:
            job = engine.prepare(params)
            if job is not None:
                return engine, job
        full = self._full()  # loading it makes it the one engine from now on
        return full, full.prepare(params)

    def _results(self, engine: Engine[Any], params: GenerationParams, batch: int, seeds: list[int],
                 images: list[Image.Image], extra: dict[str, Any]) -> list[GeneratedImage]:
        return [
            GeneratedImage(
                image=image, seed=seed, params=replace(params, seed=seed, batch_size=1, batch_count=1),
                index=batch * params.batch_size + offset, model_name=engine.name, model_hash=engine.sha256,
                device=engine.device, dtype=engine.dtype, extra=dict(extra), writer=self._writer,
            )
            for offset, (seed, image) in enumerate(zip(seeds, images, strict=True))
        ]

    def _best_of(
        self, params: GenerationParams, on_step: StepCallback | None, should_stop: StopCheck | None
    ) -> list[GeneratedImage]:
        """For picture k, paint `best_of` candidates (seeds seed + k*N ...) and keep the best match.

        The kept picture's params name its own seed, so it can be re-made alone without the search.
        """
        scorer = self._scorer
        if scorer is None:
            raise InvalidParams("best_of", "best-of needs a scorer: Painter.load(..., "
                                "scorer=keypaint.scorer.ShippedScorer(device)), as --best-of does")
        self._full()  # the candidates are painted by the loaded model (the scorer goes on its device)
        n = params.best_of
        kept: list[GeneratedImage] = []
        for k in range(params.total_images):
            assert params.seed >= 0
            candidates = replace(params, seed=params.seed + k * n, batch_size=n, batch_count=1, best_of=1)
            try:
                results = self._paint(candidates, on_step, should_stop)
            except Cancelled:  # a picture's candidates cut short are no pick: only the kept ones count
                raise_with_finished(kept)
            best, scores = scorer.pick_best([r.image for r in results], params.prompt)
            winner = results[best]
            winner.index = k
            winner.extra.update({"Match score": round(float(scores[best]), 4), "Best of": n})
            kept.append(winner)
        return kept
