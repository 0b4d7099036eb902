"""`Painter`: loads a model once and turns `GenerationParams` into pictures.

Every front end (CLI, Python API, server, web page) builds params and calls `Painter.generate`. The
reverse chain itself is run by diffusers' pipelines, fed with keypaint's own prompt embeddings (A1111
emphasis and chunking) and with noise drawn on the CPU from the seed, so that a seed means the same
picture on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    DiffusionPipeline,
)
from PIL import Image

from keypaint.core.adapters import Adapters
from keypaint.core.denoised import DenoisedTracker
from keypaint.core.devices import dtype_name, pick_device, pick_dtype
from keypaint.core.params import GenerationParams, Limits
from keypaint.core.samplers import make_scheduler
from keypaint.core.speed import SpeedOptions, accelerate
from keypaint.errors import Cancelled, InvalidParams
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.prompts.encode import PromptEmbeddings, encode_prompts

if TYPE_CHECKING:
    from keypaint.provenance.policy import ContentPolicy
    from keypaint.scorer import Scorer


@dataclass(frozen=True)
class StepEvent:
    """One finished denoising step, reported to `on_step` callbacks (progress bars, previews, explain)."""

    step: int  # 1-based step within the current batch
    steps: int  # steps this batch runs (img2img runs fewer: strength x steps)
    batch: int  # 0-based batch number
    batches: int
    latents: torch.Tensor = field(repr=False)  # x_t after this step, on the model's device
    denoised: torch.Tensor | None = field(default=None, repr=False)  # the step's x_0 estimate (fp32)


@dataclass
class GeneratedImage:
    """One picture and everything needed to make it again."""

    image: Image.Image
    seed: int
    params: GenerationParams  # params that re-make exactly this picture alone (its seed, batch of one)
    index: int  # position within the run
    model_name: str
    model_hash: str | None
    device: str
    dtype: str
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a best-of score


StepCallback = Callable[[StepEvent], None]
StopCheck = Callable[[], bool]


class Painter:
    """Holds one loaded model on one device and runs generation requests against it."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        limits: Limits = Limits(),
        scorer: Scorer | None = None,
        policy: ContentPolicy | None = None,  # blocked keywords, refused in resolve before any compute
        speed: SpeedOptions | None = None,  # fast path, approximate speed-ups, low memory (core.speed)
        home: Path | None = None,  # where LoRAs and embeddings named without a path are found
    ) -> None:
        self.model = model
        self.limits = limits
        self.policy = policy
        self.adapters = Adapters(model, home)
        self.speed = accelerate(model.pipe, speed or SpeedOptions())
        self._pipes: dict[str, DiffusionPipeline] = {"txt2img": self.speed.pipe}
        self._base_scheduler_config = dict(model.pipe.scheduler.config)
        self._scorer = scorer  # the shipped scorer is loaded on the first best-of request if None
        model.pipe.set_progress_bar_config(disable=True)

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
    ) -> Painter:
        """Load `model` (None: the built-in model; a name in the model folder; a file or diffusers folder).

        The content policy of `home` (blocked keywords) is read first and applies to every request.
        """
        from keypaint.models.loader import load_model
        from keypaint.provenance.policy import ContentPolicy

        policy = ContentPolicy.load(home)
        if speed is not None:
            speed.validate()  # before the model loads
        torch_device = pick_device(device)
        torch_dtype = pick_dtype(torch_device, dtype)
        loaded = load_model(
            model, home=home, vae=vae, allow_pickle=allow_pickle, device=torch_device, dtype=torch_dtype
        )
        return cls(loaded, limits=limits, policy=policy, home=home, speed=speed)

    @property
    def base_scheduler_config(self) -> dict[str, Any]:
        """The model's training schedule (betas, prediction type) every sampler is built from."""
        return dict(self._base_scheduler_config)

    @property
    def device(self) -> torch.device:
        return self.model.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.pipe.unet.dtype

    def resolve(self, params: GenerationParams) -> GenerationParams:
        """Check `params` against this model and fill in what they leave open (seed, size)."""
        if self.policy is not None:
            self.policy.check(params.prompt)
        params.validate(self.limits)
        width, height = params.width, params.height
        if params.init_image is not None and (width is None or height is None):
            iw, ih = params.init_image.size
            width, height = width or iw - iw % 8, height or ih - ih % 8
        size = self.model.native_size
        resolved = replace(params.with_seed(), width=width or size, height=height or size)
        resolved.validate(self.limits)
        plan = self.adapters.check(resolved)  # LoRA and embedding files exist and fit this model
        if plan.loras and self.speed.backend != "eager":
            fast = self.speed.backend
            raise InvalidParams("lora", f"LoRAs run on the plain path, not the {fast} fast path; drop --fast")
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
        seeds = params.seeds()
        # 1. apply the LoRAs asked for, and encode the keywords (with any embeddings) once for the whole run
        active = self.adapters.activate(params)
        prompt = self.model.expand(active.prompt) if params.expand_keywords else active.prompt
        if prompt != active.prompt:
            active.extra["Keywords used"] = prompt  # what the text encoder saw
        embeds = encode_prompts(
            self.model, prompt, active.negative_prompt, device=self.device, dtype=self.dtype,
            embeddings=active.embeddings,
        )
        results: list[GeneratedImage] = []
        for batch in range(params.batch_count):
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            batch_seeds = seeds[batch * params.batch_size : (batch + 1) * params.batch_size]
            images = self._run_batch(params, batch_seeds, embeds, batch, on_step, should_stop)
            for offset, (seed, image) in enumerate(zip(batch_seeds, images, strict=True)):
                alone = replace(params, seed=seed, batch_size=1, batch_count=1)
                results.append(
                    GeneratedImage(
                        image=image,
                        seed=seed,
                        params=alone,
                        index=batch * params.batch_size + offset,
                        model_name=self.model.name,
                        model_hash=self.model.sha256,
                        device=str(self.device),
                        dtype=dtype_name(self.dtype),
                        extra=dict(active.extra),
                    )
                )
        if self.speed.options.approximate:  # the picture depends on it: record it beside the params
            for result in results:
                result.extra["DeepCache"] = self.speed.options.deep_cache
        return results

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
            results = self.generate(candidates, on_step=on_step, should_stop=should_stop)
            best, scores = pick_best(self._scorer, [r.image for r in results], params.prompt)
            winner = results[best]
            winner.index = k
            winner.extra.update({"Match score": round(float(scores[best]), 4), "Best of": n})
            kept.append(winner)
        return kept

    def _run_batch(
        self,
        params: GenerationParams,
        seeds: list[int],
        embeds: PromptEmbeddings,
        batch: int,
        on_step: StepCallback | None,
        should_stop: StopCheck | None,
    ) -> list[Image.Image]:
        assert params.width is not None and params.height is not None
        if params.mode != "txt2img" and params.strength == 0:
            # Zero strength runs no step of the reverse chain: the picture is the init image through the VAE.
            return self._vae_roundtrip(params, len(seeds))
        pipe = self._pipe("inpaint" if self.model.inpainting else params.mode)
        pipe.scheduler = make_scheduler(params.sampler, self._base_scheduler_config, seeds)
        # 2. one CPU generator per picture: noise depends on the seed alone, not on the device or batch
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        kwargs: dict[str, Any] = {
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "generator": generators,
            "height": params.height,
            "width": params.width,
            "output_type": "pil",
            **_embed_kwargs(embeds.repeat(len(seeds)), self.model.kind),
        }
        if params.mode == "txt2img":
            # x_T first, then (ancestral samplers) each step's noise, all from the picture's own generator
            kwargs["latents"] = self._initial_noise(generators, params.height, params.width)
        if params.mode != "txt2img":
            assert params.init_image is not None
            kwargs["image"] = params.init_image.convert("RGB").resize((params.width, params.height))
            kwargs["strength"] = params.strength
        if params.mask is not None:
            kwargs["mask_image"] = params.mask.convert("L").resize((params.width, params.height))
        elif self.model.inpainting:
            # A 9-channel inpainting U-Net always wants a mask: repaint everything, as A1111 does.
            size = (params.width, params.height)
            kwargs["mask_image"] = Image.new("L", size, 255)
            kwargs.setdefault("image", Image.new("RGB", size, (127, 127, 127)))
            kwargs.setdefault("strength", 1.0)
        total_steps = _steps_run(params)

        tracker = DenoisedTracker(
            pipe.unet, self._base_scheduler_config, params.guidance_scale, pipe.vae.config.latent_channels
        )

        def step_end(_pipe: DiffusionPipeline, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                latents = tensors["latents"]
                on_step(StepEvent(i + 1, total_steps, batch, params.batch_count, latents, tracker.estimate()))
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            return tensors

        self.speed.before_run()
        with torch.inference_mode(), tracker:
            output = pipe(**kwargs, callback_on_step_end=step_end)
        self.speed.after_run((len(seeds), params.height, params.width))
        return list(output.images)

    def _initial_noise(self, generators: list[torch.Generator], height: int, width: int) -> torch.Tensor:
        """x_T ~ N(0, I), drawn on the CPU per picture so every device starts from the same numbers."""
        pipe = self.model.pipe
        shape = (
            pipe.vae.config.latent_channels,
            height // pipe.vae_scale_factor,
            width // pipe.vae_scale_factor,
        )
        noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
        return noise.to(self.device, self.dtype)

    def _vae_roundtrip(self, params: GenerationParams, count: int) -> list[Image.Image]:
        assert params.init_image is not None and params.width is not None and params.height is not None
        pipe = self.model.pipe
        image = params.init_image.convert("RGB").resize((params.width, params.height))
        with torch.inference_mode():
            pixels = pipe.image_processor.preprocess(image).to(self.device, self.dtype)
            latents = pipe.vae.encode(pixels).latent_dist.mode()
            decoded = pipe.vae.decode(latents).sample
        picture = pipe.image_processor.postprocess(decoded, output_type="pil")[0]
        return [picture.copy() for _ in range(count)]

    def _pipe(self, mode: str) -> DiffusionPipeline:
        """The pipeline for a mode, sharing the loaded components (built once, no copies)."""
        if mode not in self._pipes:
            base = self._pipes["txt2img"]
            auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
            pipe = auto.from_pipe(base)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[mode] = pipe
        return self._pipes[mode]


def _steps_run(params: GenerationParams) -> int:
    if params.mode == "txt2img":
        return params.steps
    return min(int(params.steps * params.strength), params.steps)


def _embed_kwargs(embeds: PromptEmbeddings, kind: ModelKind) -> dict[str, torch.Tensor]:
    kwargs = {"prompt_embeds": embeds.prompt_embeds, "negative_prompt_embeds": embeds.negative_prompt_embeds}
    if kind.is_xl:
        kwargs["pooled_prompt_embeds"] = embeds.pooled_prompt_embeds
        kwargs["negative_pooled_prompt_embeds"] = embeds.negative_pooled_prompt_embeds
    return kwargs
