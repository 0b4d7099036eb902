"""The reverse chain, recorded: x_t, the predicted x_0 and the predicted noise at every U-Net call.

Diffusers' pipelines hand a step callback only x_t, so this is a short loop of our own over the same parts
(the model's U-Net, the sampler's diffusers scheduler, keypaint's prompt embeddings, CPU-seeded x_T). It
runs the same numbers as `Painter.generate`; tests check that its last step is the Painter's picture.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import make_scheduler
from keypaint.core.sampling_math import cpu_generators, guide_batch, split_prediction, start_noise
from keypaint.errors import InvalidParams
from keypaint.explain.figures import (
    decode_latents,
    latent_view,
    save_animation,
    save_grid,
    save_npz,
    side_by_side,
    to_array,
)
from keypaint.models.loaded import LoadedModel
from keypaint.prompts.encode import PromptEmbeddings, encode_prompts


@dataclass
class Recording:
    """One picture's reverse chain; index i is the i-th U-Net call (2nd-order samplers make ~2 a step)."""

    params: GenerationParams  # resolved: concrete seed and size
    timesteps: list[float]  # the timestep the U-Net was given at each call (diffusers' 0..T-1 numbering)
    x_t: torch.Tensor = field(repr=False)  # (n + 1, C, h, w): U-Net input x_t at each call, then final z_0
    pred_x0: torch.Tensor = field(repr=False)  # (n, C, h, w): the model's guess of the clean latent
    pred_eps: torch.Tensor = field(repr=False)  # (n, C, h, w): the guided noise prediction
    image: Image.Image = field(repr=False)  # the final picture, D(z_0)


def base_scheduler_config(painter: Painter) -> dict[str, Any]:
    """The model's own scheduler config (its training schedule), before any sampler was applied."""
    return painter.base_scheduler_config


def uses_guidance(model: LoadedModel, guidance_scale: float) -> bool:
    """Classifier-free guidance runs unless the scale is <= 1 or the U-Net embeds the scale itself (LCM)."""
    return guidance_scale > 1 and model.pipe.unet.config.time_cond_proj_dim is None


def _alpha_bar_at(scheduler: Any, i: int, t: torch.Tensor) -> float:
    """abar of the i-th call: from the scheduler's sigma (abar = 1 / (1 + sigma^2)) or alphas_cumprod[t]."""
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and len(sigmas) == len(scheduler.timesteps) + 1:
        sigma = float(sigmas[i])
        return 1.0 / (1.0 + sigma**2)
    return float(scheduler.alphas_cumprod[int(t)])


def _added_conditions(
    model: LoadedModel, embeds: PromptEmbeddings, height: int, width: int, guided: bool
) -> dict[str, torch.Tensor] | None:
    """SDXL's extra conditioning: pooled text embeds and the size/crop "time ids" (original = target)."""
    if not model.kind.is_xl:
        return None
    assert embeds.pooled_prompt_embeds is not None and embeds.negative_pooled_prompt_embeds is not None
    dtype = embeds.prompt_embeds.dtype
    device = embeds.prompt_embeds.device
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype, device=device)
    pooled = embeds.pooled_prompt_embeds
    if guided:
        return {"text_embeds": torch.cat([embeds.negative_pooled_prompt_embeds, pooled]),
                "time_ids": torch.cat([time_ids, time_ids])}
    return {"text_embeds": pooled, "time_ids": time_ids}


def record_reverse(painter: Painter, params: GenerationParams) -> Recording:
    """Run `params` (txt2img, one picture) step by step, keeping what the model predicts at each call."""
    model, pipe = painter.model, painter.model.pipe
    params = painter.resolve(params)
    if params.mode != "txt2img":
        raise InvalidParams("init_image", "explain records text-to-image runs; drop the init image")
    if params.total_images != 1:
        raise InvalidParams("batch_size", "explain records one picture at a time")
    if model.inpainting:
        raise InvalidParams("model", f"{model.name} is an inpainting model; explain needs text-to-image")
    assert params.width is not None and params.height is not None
    device, dtype, unet = painter.device, painter.dtype, pipe.unet
    seed = params.seeds()[0]

    # 1. the same prompt embeddings as the Painter; with guidance the batch is [negative, positive]
    prompt = model.expand(params.prompt).prompt if params.expand_keywords else params.prompt
    embeds = encode_prompts(model, prompt, params.negative_prompt, device=device, dtype=dtype)
    guided = uses_guidance(model, params.guidance_scale)
    context = embeds.prompt_embeds
    if guided:
        context = torch.cat([embeds.negative_prompt_embeds, embeds.prompt_embeds])
    added = _added_conditions(model, embeds, params.height, params.width, guided)
    timestep_cond = None
    if unet.config.time_cond_proj_dim is not None:  # LCM: the guidance scale is an input, not a batch
        w = torch.tensor([params.guidance_scale - 1.0])
        timestep_cond = pipe.get_guidance_scale_embedding(w, embedding_dim=unet.config.time_cond_proj_dim)
        timestep_cond = timestep_cond.to(device=device, dtype=dtype)

    # 2. the sampler's scheduler over the model's training schedule
    scheduler = make_scheduler(params.sampler, base_scheduler_config(painter), [seed])
    scheduler.set_timesteps(params.steps, device=device)
    step_args = set(inspect.signature(scheduler.step).parameters)
    generators = cpu_generators([seed])
    extra: dict[str, Any] = {"generator": generators} if "generator" in step_args else {}
    if "eta" in step_args:
        extra["eta"] = 0.0

    # 3. x_T ~ N(0, I) drawn on the CPU from the seed, scaled to the scheduler's first sigma
    shape = (pipe.vae.config.latent_channels, params.height // pipe.vae_scale_factor,
             params.width // pipe.vae_scale_factor)
    latents = start_noise(generators, shape).to(device, dtype)
    latents = latents * scheduler.init_noise_sigma

    # 4. the reverse chain, keeping x_t, x_0 and eps of every U-Net call
    prediction_type = str(scheduler.config.get("prediction_type", "epsilon"))
    xs, x0s, epss, ts = [], [], [], []
    with torch.inference_mode():
        for i, t in enumerate(scheduler.timesteps):
            x_in = scheduler.scale_model_input(latents, t)  # the variance-preserving x_t the U-Net sees
            model_in = torch.cat([x_in, x_in]) if guided else x_in
            output = unet(model_in, t, encoder_hidden_states=context, timestep_cond=timestep_cond,
                          added_cond_kwargs=added, return_dict=False)[0]
            if guided:  # classifier-free guidance (Ho & Salimans 2022): e = e_uncond + w (e_cond - e_uncond)
                output = guide_batch(output, params.guidance_scale)
            x0, eps = split_prediction(output.float(), x_in.float(), _alpha_bar_at(scheduler, i, t),
                                       prediction_type)
            step = scheduler.step(output, t, latents, **extra, return_dict=True)
            known_x0 = getattr(step, "pred_original_sample", None)
            known_x0 = getattr(step, "denoised", None) if known_x0 is None else known_x0
            xs.append(x_in[0].float().cpu())
            x0s.append((x0 if known_x0 is None else known_x0)[0].float().cpu())
            epss.append(eps[0].float().cpu())
            ts.append(float(t))
            latents = step.prev_sample
    xs.append(latents[0].float().cpu())
    [image] = decode_latents(model, latents)
    return Recording(params=params, timesteps=ts, x_t=torch.stack(xs), pred_x0=torch.stack(x0s),
                     pred_eps=torch.stack(epss), image=image)


def pick_columns(n: int, columns: int) -> list[int]:
    """`columns` call indices spread evenly over 0..n-1, first and last included."""
    if n <= columns:
        return list(range(n))
    return sorted({round(k * (n - 1) / (columns - 1)) for k in range(columns)})


def save_reverse(
    recording: Recording,
    model: LoadedModel,
    grid: Path | None,
    animation: Path | None = None,
    npz: Path | None = None,
    columns: int = 8,
) -> list[Path]:
    """Write the grid (x_t, x_0, eps rows), the animation (one frame a call) and the raw tensors."""
    decoded_x = decode_latents(model, recording.x_t)  # n + 1: the last is the final picture
    decoded_x0 = decode_latents(model, recording.pred_x0)
    size = recording.image.size
    noise = [latent_view(eps, size) for eps in recording.pred_eps]
    n = len(recording.timesteps)
    written: list[Path] = []
    if grid is not None:
        picked = pick_columns(n, columns)
        rows = [[decoded_x[i] for i in picked] + [decoded_x[-1]], [decoded_x0[i] for i in picked],
                [noise[i] for i in picked]]
        # diffusers numbers training steps 0..T-1; the labels use the paper's 1..T (t = 0 is the clean x_0)
        labels = [f"call {i + 1}/{n}\nt={recording.timesteps[i] + 1:.0f}" for i in picked] + ["final"]
        p = recording.params
        title = f"{p.prompt!r}, {p.sampler.value}, {p.steps} steps, CFG {p.guidance_scale:g}, seed {p.seed}"
        written.append(save_grid(rows, grid, row_labels=["x_t (decoded)", "predicted x_0", "predicted ε"],
                                 col_labels=labels, title=title))
    if animation is not None:
        frames = [side_by_side([decoded_x[i], decoded_x0[i], noise[i]]) for i in range(n)]
        frames.append(side_by_side([decoded_x[-1], decoded_x0[-1], noise[-1]]))
        written.append(save_animation(frames, animation))
    if npz is not None:
        written.append(save_npz(
            npz,
            timesteps=np.array(recording.timesteps),
            x_t=recording.x_t.numpy(),
            pred_x0=recording.pred_x0.numpy(),
            pred_eps=recording.pred_eps.numpy(),
            x_t_decoded=to_array(decoded_x),
            pred_x0_decoded=to_array(decoded_x0),
            image=to_array([recording.image]),
        ))
    return written
