"""The x_0 estimate behind each denoising step, for live previews.

Whatever the sampler, the U-Net sees x_t in the variance-preserving form (k-diffusion style schedulers
scale their sigma-form latents with `scale_model_input` first), so one formula gives the estimate
(`sampling_math.split_prediction`). A forward hook, PyTorch's own API for observing a module, records the
U-Net's latest input, timestep and output; guidance is applied the way the pipelines apply it
(`sampling_math.guide_batch`).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler

from keypaint.core.sampling_math import guide_batch, split_prediction


class DenoisedTracker:
    """Records the U-Net's latest call while active; `estimate()` turns it into x_0 (batch, C, h, w)."""

    def __init__(
        self,
        unet: torch.nn.Module,
        scheduler_config: dict[str, Any],
        guidance_scale: float,
        latent_channels: int,
    ) -> None:
        config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
        self._abar = DDPMScheduler.from_config(config).alphas_cumprod.float()
        self._prediction = str(config.get("prediction_type", "epsilon"))
        self._scale = guidance_scale
        self._channels = latent_channels
        self._unet = unet
        self._handle: Any = None
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __enter__(self) -> DenoisedTracker:
        self._handle = self._unet.register_forward_hook(self._record, with_kwargs=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._handle.remove()

    def _record(self, _module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        prediction = output[0] if isinstance(output, tuple) else output.sample
        self._last = (sample, torch.as_tensor(timestep), prediction)

    def estimate(self) -> torch.Tensor | None:
        """x_0 of the latest U-Net call (None before the first one)."""
        if self._last is None:
            return None
        sample, timestep, prediction = self._last
        x_t = sample[:, : self._channels].float()
        prediction = prediction.float()
        if self._scale > 1:
            # classifier-free guidance (the pipelines' rule: scale > 1): the batch is [uncond, cond]
            prediction = guide_batch(prediction, self._scale)
            x_t = x_t.chunk(2)[1]
        index = int(timestep.flatten()[0].round().clamp(0, len(self._abar) - 1))
        x0, _eps = split_prediction(prediction, x_t, self._abar[index], self._prediction)
        return x0
