"""`DiffusersEngine`: the `Engine` that paints with the loaded model through diffusers' pipelines.

It applies the request's LoRAs and embeddings, expands known keywords, encodes the prompts once per request
(keypaint's A1111 emphasis and chunking) and runs each batch through `PipelineRun`. After a CPU fast-path
txt2img run of the built-in model it adds what the run used to the frozen bundle, for the next process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keypaint.core.devices import dtype_name
from keypaint.core.speed.options import SpeedOptions, approximations
from keypaint.keywords.vocabulary import expansion_record
from keypaint.models.upscalers import Upscalers

if TYPE_CHECKING:
    from PIL import Image

    from keypaint.core.adapters import Adapters
    from keypaint.core.control import ControlUnit
    from keypaint.core.controlnets import ControlNets, PreparedControl
    from keypaint.core.engine import StepReport, StopCheck
    from keypaint.core.onnx_coldstart.record import BundleRecorder
    from keypaint.core.params import GenerationParams
    from keypaint.core.pipeline_run import PipelineRun
    from keypaint.models.loaded import LoadedModel
    from keypaint.models.registry import BuiltinModel
    from keypaint.prompts.encode import PromptEmbeddings


@dataclass
class DiffusersJob:
    """A request with its adapters applied and its prompts encoded."""

    params: GenerationParams
    embeds: PromptEmbeddings
    extra: dict[str, Any]
    plain_prompt: bool  # no LoRA tag or embedding changed the prompt: the run may feed the frozen bundle
    control: PreparedControl | None = None  # the request's ControlNets, loaded, and their maps
    upscaler: Any = None  # the hires fix's upscaler model (models.upscalers), loaded once per request


class DiffusersEngine:
    """The loaded model's pipelines (`run`) and adapters; paints every request it is given."""

    def __init__(self, model: LoadedModel, run: PipelineRun, adapters: Adapters, options: SpeedOptions,
                 home: Path | None, builtin: BuiltinModel | None = None, upscalers: Upscalers | None = None
                 ) -> None:
        self.model = model
        self.run = run
        self.adapters = adapters
        self.options = options
        self.home = home
        self.builtin = builtin  # the built-in model's files: its fast-path runs feed its frozen bundle
        self._recorder: BundleRecorder | None = None  # writes the frozen bundle after fast-path runs
        self._controlnets: ControlNets | None = None  # loaded on the first request with control units
        self.upscalers = upscalers or Upscalers(home)  # the hires fix's upscaler model files

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def sha256(self) -> str:
        return self.model.sha256

    @property
    def native_size(self) -> int:
        return self.model.native_size

    @property
    def device(self) -> str:
        return str(self.model.denoiser.device)

    @property
    def dtype(self) -> str:
        return dtype_name(self.model.denoiser.dtype)

    def prepare(self, params: GenerationParams) -> DiffusersJob:
        from keypaint.prompts.encode import encode_prompts

        control = self._prepare_control(params)  # a ControlNet of another family is refused before any work
        # apply the LoRAs asked for, and encode the keywords (with any embeddings) once for the whole run
        active = self.adapters.activate(params)
        prompt = active.prompt
        if params.expand_keywords:
            expansion = self.model.expand(active.prompt, skip=active.names)
            prompt = expansion.prompt
            active.extra.update(expansion_record(active.prompt, expansion))
        denoiser = self.model.denoiser
        embeds = encode_prompts(
            self.model, prompt, active.negative_prompt, device=denoiser.device, dtype=denoiser.dtype,
            embeddings=active.embeddings,
        )
        extra: dict[str, Any] = dict(active.extra)
        extra.update(approximations(self.run.speed.options))  # they change the picture: recorded beside it
        if control is not None:
            extra.update(control.infotext())
        upscaler = None
        if params.hires is not None and params.hires.is_model:
            upscaler = self.upscalers.load(params.hires.upscaler, denoiser.device)
        return DiffusersJob(params, embeds, extra, active.prompt == params.prompt and not active.embeddings,
                            control, upscaler)

    def check_control(self, units: tuple[ControlUnit, ...]) -> None:
        """The units' ControlNets are there and made for this model (headers only; `ModelError` if not)."""
        self.controlnets.check(units)

    @property
    def controlnets(self) -> ControlNets:
        if self._controlnets is None:
            from keypaint.core.controlnets import ControlNets

            shipped = self.builtin.controls if self.builtin is not None else None
            self._controlnets = ControlNets(self.model, self.home, shipped=shipped)
        return self._controlnets

    def _prepare_control(self, params: GenerationParams) -> PreparedControl | None:
        if not params.control_units:
            return None
        from keypaint.core.controlnets import prepare_control

        assert params.width is not None and params.height is not None
        return prepare_control(self.controlnets, params.control_units, params.width, params.height,
                               params.mask, params.mode)

    def run_batch(self, job: DiffusersJob, seeds: list[int], on_step: StepReport | None,
                  should_stop: StopCheck | None) -> list[Image.Image]:
        if job.params.hires is not None:  # txt2img, then img2img on the upscaled picture
            from keypaint.core.hires_pass import run_hires

            return run_hires(self.run, job.params, seeds, job.embeds, on_step, should_stop, job.upscaler,
                             job.control)
        return self.run.run_batch(job.params, seeds, job.embeds, on_step, should_stop, job.control)

    def finish(self, job: DiffusersJob) -> None:
        """After a CPU fast-path txt2img run of the built-in model, add what it used to the frozen bundle."""
        params, run = job.params, self.run
        if not (self.options.frozen and run.speed.backend == "onnxruntime" and params.mode == "txt2img"
                and job.plain_prompt and not params.loras):
            return
        if self._recorder is None:
            from keypaint.core.onnx_coldstart.record import BundleRecorder
            from keypaint.core.speed.artefacts import default_cache_dir

            source, builtin = run.model.source, self.builtin
            if source is None or builtin is None or Path(source).resolve() != builtin.weights.resolve():
                return
            cache = self.options.cache_dir or default_cache_dir(self.home)
            self._recorder = BundleRecorder(cache, run.model, builtin.text_encoder())
        self._recorder.record(run.speed, params.sampler, params.steps, run.base_scheduler_config)
