"""Training conditioning: captions -> what the U-Net is conditioned on, for every model family."""

from __future__ import annotations

from collections.abc import Callable

import torch

from keypaint.finetune.config import FinetuneConfig
from keypaint.models.loaded import LoadedModel
from keypaint.prompts.embeddings import TextualInversion
from keypaint.prompts.encode import encode_captions

Condition = Callable[[list[str]], tuple[torch.Tensor, dict[str, torch.Tensor] | None]]


def conditioner(
    model: LoadedModel,
    cfg: FinetuneConfig,
    vectors: list[torch.nn.Parameter],
    resolution: int,
    device: torch.device,
) -> Condition:
    """captions -> (U-Net context, SDXL's added conditioning); frozen encoders' outputs are computed once."""
    cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    embedding = [TextualInversion(cfg.token, tuple(vectors))] if vectors else []

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if embedding:
            return encode_captions(model, texts, embedding)  # gradients flow to the vectors
        for text in set(texts) - cache.keys():
            with torch.no_grad():
                cache[text] = encode_captions(model, [text])
        context = torch.cat([cache[text][0] for text in texts])
        pooled = [cache[text][1] for text in texts]
        return context, torch.cat(pooled) if all(p is not None for p in pooled) else None  # type: ignore[arg-type]

    def condition(texts: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        context, pooled = encode(texts)
        if not model.kind.is_xl:
            return context, None
        assert pooled is not None
        # SDXL's micro-conditioning: original size, crop corner, target size (Podell et al. 2023)
        time_ids = torch.tensor(
            [[resolution, resolution, 0, 0, resolution, resolution]] * len(texts),
            device=device,
            dtype=context.dtype,
        )
        return context, {"text_embeds": pooled, "time_ids": time_ids}

    return condition
