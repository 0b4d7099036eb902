"""The hires fix's two passes over one batch (A1111 `StableDiffusionProcessingTxt2Img.sample_hr_pass`).

1. txt2img at the request's size.
2. Upscale: a "Latent" upscaler resizes the latents themselves (torch interpolate, no VAE round trip);
   Lanczos/Nearest and upscaler models (`models.upscalers`) upscale the decoded picture.
3. img2img on the same model at the bigger size: `strength` of the forward chain noised onto the upscaled
   picture from each picture's own seed, then `steps x strength` steps of the reverse chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from PIL import Image

from keypaint.core.hires import LATENT_MODES, HiresOptions

if TYPE_CHECKING:
    from keypaint.core.controlnets import PreparedControl
    from keypaint.core.params import GenerationParams
    from keypaint.core.pipeline_run import PipelineRun, StepReport
    from keypaint.prompts.encode import PromptEmbeddings

_RESAMPLING = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}


def run_hires(run: PipelineRun, params: GenerationParams, seeds: list[int], embeds: PromptEmbeddings,
              on_step: StepReport | None, should_stop: Callable[[], bool] | None,
              upscaler: Any = None, control: PreparedControl | None = None) -> list[Image.Image]:
    """Both passes of `params` (which has `hires`) for one batch; `upscaler` is the loaded model when the
    hires upscaler names a model file. ControlNets (`control`) steer the first pass, which sets the
    composition, as in A1111's default."""
    hires = params.hires
    assert hires is not None and params.width is not None and params.height is not None
    first = replace(params, hires=None)
    cover, final = hires.target(params.width, params.height)
    second = replace(first, width=final[0], height=final[1], steps=hires.second_steps(params.steps),
                     strength=hires.strength)
    second_steps = min(int(second.steps * second.strength), second.steps)
    total = params.steps + second_steps

    def report(offset: int) -> StepReport | None:
        if on_step is None:
            return None
        return lambda step, _steps, latents, denoised: on_step(offset + step, total, latents, denoised)

    # 1. txt2img; 2. upscale
    image: list[Image.Image] | torch.Tensor
    if hires.latent:
        latents = run.paint(first, seeds, embeds, report(0), should_stop, output_type="latent",
                            control=control)
        image = upscale_latents(latents, hires, cover, final, run.model.pipe.vae_scale_factor)
        if run.model.inpainting:  # a 9-channel U-Net's pipeline masks pictures, not latents
            image = decode(run, image)
    else:
        pictures = run.paint(first, seeds, embeds, report(0), should_stop, control=control)
        image = [upscale_picture(p, hires, cover, final, upscaler) for p in pictures]
    # 3. img2img at the bigger size
    return run.paint(second, seeds, embeds, report(params.steps), should_stop, image=image)


def upscale_latents(latents: torch.Tensor, hires: HiresOptions, cover: tuple[int, int],
                    final: tuple[int, int], scale_factor: int = 8) -> torch.Tensor:
    """Latents interpolated to cover `cover` pixels, then their centre cropped to `final`."""
    mode, antialias = LATENT_MODES[hires.upscaler]
    size = (cover[1] // scale_factor, cover[0] // scale_factor)
    kwargs: dict[str, Any] = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    upscaled = F.interpolate(latents.float(), size=size, mode=mode, **kwargs).to(latents.dtype)
    return _crop(upscaled, final[0] // scale_factor, final[1] // scale_factor)


def upscale_picture(picture: Image.Image, hires: HiresOptions, cover: tuple[int, int], final: tuple[int, int],
                    model: Any = None) -> Image.Image:
    """`picture` upscaled to `cover` (Lanczos, Nearest or the model), its centre cropped to `final`."""
    if hires.upscaler in _RESAMPLING:
        big = picture.resize(cover, _RESAMPLING[hires.upscaler])
    else:
        from keypaint.models.upscalers import upscale_with

        assert model is not None, "an upscaler model is loaded before its run"
        big = upscale_with(model, picture, cover)
    left, top = (cover[0] - final[0]) // 2, (cover[1] - final[1]) // 2
    return big if cover == final else big.crop((left, top, left + final[0], top + final[1]))


def decode(run: PipelineRun, latents: torch.Tensor) -> list[Image.Image]:
    pipe = run.model.pipe
    with torch.inference_mode():
        pixels = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(pixels, output_type="pil")


def _crop(latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    top, left = (latents.shape[-2] - height) // 2, (latents.shape[-1] - width) // 2
    return latents[..., top:top + height, left:left + width]
