"""One batch of the reverse chain through diffusers' pipelines: what a `Painter` runs on a loaded model.

The pipelines are fed keypaint's own prompt embeddings (A1111 emphasis and chunking) and noise drawn on
the CPU from each picture's seed, so that a seed means the same picture on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
)
from PIL import Image

from keypaint.core.denoised import DenoisedTracker
from keypaint.core.flow_run import flow_kwargs, unpacked
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import make_scheduler
from keypaint.core.sampling_math import cpu_generators, start_noise
from keypaint.errors import Cancelled
from keypaint.models.loaded import LoadedModel, ModelKind

if TYPE_CHECKING:
    from keypaint.core.controlnets import PreparedControl
    from keypaint.core.speed import Accelerated
    from keypaint.prompts.encode import PromptEmbeddings

# (1-based step, steps this batch runs, latents after the step, the step's x_0 estimate or None)
StepReport = Callable[[int, int, torch.Tensor, torch.Tensor | None], None]


class PipelineRun:
    """The model's pipelines (one per mode, sharing components) with the speed options applied."""

    def __init__(self, model: LoadedModel, speed: Accelerated) -> None:
        self.model = model
        self.speed = speed
        self.pipes: dict[str, DiffusionPipeline] = {"txt2img": speed.pipe}
        self.base_scheduler_config = dict(model.pipe.scheduler.config)
        model.pipe.set_progress_bar_config(disable=True)

    def run_batch(
        self,
        params: GenerationParams,
        seeds: list[int],
        embeds: PromptEmbeddings,
        on_step: StepReport | None,
        should_stop: Callable[[], bool] | None,
        control: PreparedControl | None = None,
    ) -> list[Image.Image]:
        return self.paint(params, seeds, embeds, on_step, should_stop, control=control)

    def paint(
        self,
        params: GenerationParams,
        seeds: list[int],
        embeds: PromptEmbeddings,
        on_step: StepReport | None,
        should_stop: Callable[[], bool] | None,
        *,
        image: list[Image.Image] | torch.Tensor | None = None,  # img2img from these (one per seed)
        output_type: str = "pil",  # "latent": the scaled latents, for a latent upscale
        control: PreparedControl | None = None,  # ControlNets and their maps (core.controlnets)
    ) -> Any:
        """One pass of the reverse chain over a batch: txt2img, img2img or inpainting as `params` ask, or
        img2img from `image` (pictures, or latents) when it is given."""
        assert params.width is not None and params.height is not None
        mode = params.mode if image is None else "img2img"
        if image is None and mode != "txt2img" and params.strength == 0:
            # Zero strength runs no step of the reverse chain: the picture is the init image through the VAE.
            return self.vae_roundtrip(params, len(seeds))
        pipe_mode = "inpaint" if self.model.inpainting else mode
        pipe = self.pipe(pipe_mode) if control is None else self.control_pipe(pipe_mode, control)
        flow = self.model.kind.is_flow
        if not flow:
            pipe.scheduler = make_scheduler(params.sampler, self.base_scheduler_config, seeds)
        # one CPU generator per picture: noise depends on the seed alone, not on the device or batch
        generators = cpu_generators(seeds)
        kwargs: dict[str, Any] = {
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "generator": generators,
            "height": params.height,
            "width": params.width,
            "output_type": output_type,
            **_embed_kwargs(embeds.repeat(len(seeds)), self.model.kind),
        }
        if flow:  # SD3, Flux: their scheduler, guidance and packed noise (core.flow_run)
            kwargs.update(flow_kwargs(self.model, pipe, params, embeds.repeat(len(seeds)), generators,
                                      self.base_scheduler_config))
        elif mode == "txt2img":
            # x_T first, then (ancestral samplers) each step's noise, all from the picture's own generator
            kwargs["latents"] = self.initial_noise(generators, params.height, params.width)
        if image is not None:
            kwargs["image"] = image
            kwargs["strength"] = params.strength
        elif mode != "txt2img":
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
        if control is not None:
            kwargs.update(control.pipeline_kwargs(pipe_mode, len(seeds)))
        total_steps = steps_run(params) if image is None else min(int(params.steps * params.strength),
                                                                  params.steps)

        # the x_0 estimate behind each step (previews) is the U-Net chain's; flow models report latents alone
        tracker = nullcontext() if flow else DenoisedTracker(
            pipe.unet, self.base_scheduler_config, params.guidance_scale, pipe.vae.config.latent_channels
        )

        def step_end(_pipe: DiffusionPipeline, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                latents = unpacked(self.model, tensors["latents"], params.height, params.width)
                on_step(i + 1, total_steps, latents, None if flow else tracker.estimate())
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            return tensors

        if control is not None and control.is_adapter:  # diffusers' adapter pipeline has the older callback
            kwargs["callback"] = lambda i, t, latents: step_end(pipe, i, t, {"latents": latents})
        else:
            kwargs["callback_on_step_end"] = step_end
        self.speed.before_run()
        with torch.inference_mode(), tracker:
            output = pipe(**kwargs)
        self.speed.after_run((len(seeds), params.height, params.width))
        return output.images if output_type == "latent" else list(output.images)

    def initial_noise(self, generators: list[torch.Generator], height: int, width: int) -> torch.Tensor:
        """x_T ~ N(0, I), drawn on the CPU per picture so every device starts from the same numbers."""
        pipe = self.model.pipe
        shape = (
            pipe.vae.config.latent_channels,
            height // pipe.vae_scale_factor,
            width // pipe.vae_scale_factor,
        )
        return start_noise(generators, shape).to(pipe.unet.device, pipe.unet.dtype)

    def vae_roundtrip(self, params: GenerationParams, count: int) -> list[Image.Image]:
        assert params.init_image is not None and params.width is not None and params.height is not None
        pipe = self.model.pipe
        image = params.init_image.convert("RGB").resize((params.width, params.height))
        with torch.inference_mode():
            pixels = pipe.image_processor.preprocess(image).to(pipe.vae.device, pipe.vae.dtype)
            latents = pipe.vae.encode(pixels).latent_dist.mode()
            decoded = pipe.vae.decode(latents).sample  # shift and scale cancel out: not applied either way
        picture = pipe.image_processor.postprocess(decoded, output_type="pil")[0]
        return [picture.copy() for _ in range(count)]

    def pipe(self, mode: str) -> DiffusionPipeline:
        """The pipeline for a mode, sharing the loaded components (built once, no copies)."""
        if mode not in self.pipes:
            base = self.pipes["txt2img"]
            auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
            pipe = auto.from_pipe(base)
            pipe.set_progress_bar_config(disable=True)
            self.pipes[mode] = pipe
        return self.pipes[mode]

    def control_pipe(self, mode: str, control: PreparedControl) -> DiffusionPipeline:
        """diffusers' ControlNet pipeline for a mode (SD or SDXL; txt2img, img2img or inpaint) around the
        plain model's components and the request's ControlNets: a fast path's stand-in U-Net takes no
        residuals. A T2I-Adapter runs in diffusers' adapter pipeline (SD, txt2img)."""
        if control.is_adapter:
            from diffusers import StableDiffusionAdapterPipeline

            parts = self.model.pipe.components
            adapter_pipe = StableDiffusionAdapterPipeline(
                vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                unet=parts["unet"], adapter=control.nets[0], scheduler=parts["scheduler"],
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
            adapter_pipe.set_progress_bar_config(disable=True)
            return adapter_pipe
        auto = {"txt2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image}.get(
            mode, AutoPipelineForInpainting)
        pipe = auto.from_pipe(self.model.pipe, controlnet=control.controlnet)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def steps_run(params: GenerationParams) -> int:
    if params.mode == "txt2img":
        return params.steps
    return min(int(params.steps * params.strength), params.steps)


def _embed_kwargs(embeds: PromptEmbeddings, kind: ModelKind) -> dict[str, torch.Tensor]:
    if kind.is_flow:
        return {}  # core.flow_run gives SD3 and Flux theirs
    kwargs = {"prompt_embeds": embeds.prompt_embeds, "negative_prompt_embeds": embeds.negative_prompt_embeds}
    if kind.is_xl:
        kwargs["pooled_prompt_embeds"] = embeds.pooled_prompt_embeds
        kwargs["negative_pooled_prompt_embeds"] = embeds.negative_pooled_prompt_embeds
    return kwargs
