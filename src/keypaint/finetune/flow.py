"""LoRA fine-tuning of SD3 and Flux.1 transformers: the rectified-flow objective and the file it writes.

Training pairs a latent z_0 with noise eps at a time t drawn logit-normally (sigmoid of N(0, 1), the SD3
paper's choice: most draws in the middle, where the velocity is hardest to tell), forms the straight-path
point x_t = (1 - t) z_0 + t eps, and regresses the transformer's output on the velocity v = eps - z_0
(Esser et al. 2024, eq. 2; Liu et al. 2022). Flux dev also reads its distilled guidance, held at 1 as
ai-toolkit and kohya's sd-scripts train it. The LoRA is saved in diffusers' names under `transformer.` (the
ai-toolkit layout), which diffusers' Flux and SD3 loaders, ComfyUI and Forge read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from keypaint.models.loaded import LoadedModel, ModelKind

# attention projections of both streams, as ai-toolkit's and sd-scripts' default targets
FLOW_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
TRAINING_GUIDANCE = 1.0


class FlowObjective:
    """The per-picture flow-matching loss of an SD3 or Flux model; prompts are encoded once each."""

    def __init__(self, model: LoadedModel, device: torch.device) -> None:
        self.model = model
        self.device = device
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from keypaint.prompts.flow_encode import encode_flow_prompts

        for text in texts:
            if text not in self._cache:
                embeds = encode_flow_prompts(self.model, text, "", device=self.device, dtype=torch.float32)
                assert embeds.pooled_prompt_embeds is not None
                self._cache[text] = (embeds.prompt_embeds, embeds.pooled_prompt_embeds)
        context = torch.cat([self._cache[t][0] for t in texts])
        pooled = torch.cat([self._cache[t][1] for t in texts])
        return context, pooled

    def per_sample(self, z: torch.Tensor, noise: torch.Tensor, texts: list[str],
                   generator: torch.Generator) -> torch.Tensor:
        """MSE between predicted and true velocity, one value per picture of the batch."""
        t = torch.sigmoid(torch.randn(len(z), generator=generator)).to(self.device)
        tt = t.view(-1, 1, 1, 1)
        # the straight path between data and noise: x_t = (1 - t) z_0 + t eps
        xt = (1 - tt) * z + tt * noise
        target = noise - z  # its velocity dx/dt
        context, pooled = self._encode(texts)
        pipe, transformer = self.model.pipe, self.model.pipe.transformer
        if self.model.kind is ModelKind.FLUX:
            b, c, h, w = xt.shape
            packed = pipe._pack_latents(xt, b, c, h, w)
            guidance = (torch.full((b,), TRAINING_GUIDANCE, device=self.device)
                        if transformer.config.guidance_embeds else None)
            text_ids = torch.zeros(context.shape[1], 3, device=self.device)
            image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, self.device, xt.dtype)
            out = transformer(hidden_states=packed, timestep=t, guidance=guidance, pooled_projections=pooled,
                              encoder_hidden_states=context, txt_ids=text_ids, img_ids=image_ids,
                              return_dict=False)[0]
            pred = pipe._unpack_latents(out, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor,
                                        pipe.vae_scale_factor)
        else:  # SD3 reads the time as 0..1000, as its pipeline hands it
            pred = transformer(hidden_states=xt, timestep=t * 1000, encoder_hidden_states=context,
                               pooled_projections=pooled, return_dict=False)[0]
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))


def flow_lora_tensors(state: dict[str, torch.Tensor],
                      dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """peft's LoRA keys of the transformer as a LoRA file in diffusers' (ai-toolkit's) names."""
    return {f"transformer.{k}": v.to(dtype).contiguous() for k, v in state.items()}
