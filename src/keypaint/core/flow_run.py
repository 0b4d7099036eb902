"""What one batch of an SD3 or Flux pipeline is given beyond what every pipeline takes (`pipeline_run`).

- the scheduler: the flow sampler the request names (`core.flow`), with its shift;
- guidance: SD3 runs classifier-free guidance at `guidance_scale`. Flux dev gets its distilled guidance as
  the network's input (diffusers' `guidance_scale`), and real CFG (diffusers' `true_cfg_scale`) only when
  the request has a negative prompt and a scale above 1, as diffusers and Forge run it;
- x_T: drawn per picture on the CPU from the seed, as for every model, in the (16, h/8, w/8) latent shape;
  Flux's pipeline takes it packed into 2x2 patches, (h/16 * w/16, 64).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DiffusionPipeline

from keypaint.core.flow import make_flow_scheduler
from keypaint.core.params import GenerationParams
from keypaint.core.sampling_math import start_noise
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.prompts.encode import PromptEmbeddings


def flow_kwargs(model: LoadedModel, pipe: DiffusionPipeline, params: GenerationParams,
                embeds: PromptEmbeddings, generators: list[torch.Generator],
                base_config: dict[str, Any]) -> dict[str, Any]:
    """The pipeline arguments of an SD3/Flux batch (its scheduler is set on `pipe`)."""
    assert params.width is not None and params.height is not None
    pipe.scheduler = make_flow_scheduler(params.sampler, base_config, params.flow.shift,
                                         size_shift=model.kind is ModelKind.FLUX)
    kwargs: dict[str, Any] = {"prompt_embeds": embeds.prompt_embeds,
                              "pooled_prompt_embeds": embeds.pooled_prompt_embeds}
    if model.kind is ModelKind.FLUX:
        if params.flow.distilled_guidance is not None:
            kwargs["guidance_scale"] = params.flow.distilled_guidance
        if params.negative_prompt and params.guidance_scale > 1:
            kwargs |= {"true_cfg_scale": params.guidance_scale,
                       "negative_prompt_embeds": embeds.negative_prompt_embeds,
                       "negative_pooled_prompt_embeds": embeds.negative_pooled_prompt_embeds}
        else:
            kwargs["guidance_scale"] = kwargs.get("guidance_scale", 1.0)  # schnell: no guidance input at all
    else:
        kwargs |= {"guidance_scale": params.guidance_scale,
                   "negative_prompt_embeds": embeds.negative_prompt_embeds,
                   "negative_pooled_prompt_embeds": embeds.negative_pooled_prompt_embeds}
    if params.mode == "txt2img":
        kwargs["latents"] = flow_noise(model, generators, params.height, params.width)
    return kwargs


def latent_size(model: LoadedModel, height: int, width: int) -> tuple[int, int]:
    factor = int(model.pipe.vae_scale_factor)
    if model.kind is ModelKind.FLUX:  # whole 2x2 patches
        return 2 * (height // (2 * factor)), 2 * (width // (2 * factor))
    return height // factor, width // factor


def flow_noise(model: LoadedModel, generators: list[torch.Generator], height: int,
               width: int) -> torch.Tensor:
    """x_T ~ N(0, I) per picture from its own CPU generator (packed for Flux)."""
    pipe = model.pipe
    channels = int(pipe.vae.config.latent_channels)
    h, w = latent_size(model, height, width)
    noise = start_noise(generators, (channels, h, w))
    if model.kind is ModelKind.FLUX:
        noise = pipe._pack_latents(noise, len(generators), channels, h, w)
    return noise.to(pipe.transformer.device, pipe.transformer.dtype)


def unpacked(model: LoadedModel, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Latents as (batch, 16, h, w) whatever the pipeline holds them as (step previews)."""
    if model.kind is ModelKind.FLUX and latents.dim() == 3:
        return model.pipe._unpack_latents(latents, height, width, model.pipe.vae_scale_factor)
    return latents
