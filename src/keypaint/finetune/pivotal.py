"""Pivotal tuning: the new word's vectors and a LoRA, trained together and written as one LoRA file.

Roich et al. 2022 first fit a latent "pivot" for a picture, then tune the generator around it. For
text-to-image (cloneofsimo's lora, the diffusers advanced DreamBooth LoRA script) the pivot is a
textual-inversion embedding of the token, learnt at its own, higher rate (`--embedding-lr`, 5e-3 against
the LoRA's 1e-4) while the LoRA learns the rest. The file is A1111's "bundled embeddings" layout: the
LoRA's kohya tensors plus `bundle_emb.TOKEN.string_to_param.*` (SD 1.x/2.x, the built-in model) or
`bundle_emb.TOKEN.clip_l` and `.clip_g` (SDXL); A1111 and keypaint use the word while the LoRA is on.
"""

from __future__ import annotations

from typing import Any

import torch

from keypaint.finetune.config import FinetuneConfig
from keypaint.finetune.textual_inversion import embedding_tensors
from keypaint.models.loaded import LoadedModel

LORA_WEIGHT_DECAY = 1e-2


def bundle_tensors(token: str, model: LoadedModel, vectors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The word's vectors under A1111's `bundle_emb.TOKEN.*` names (fp32)."""
    tensors = embedding_tensors(model, vectors)
    if "emb_params" in tensors:
        return {f"bundle_emb.{token}.string_to_param.*": tensors["emb_params"]}
    return {f"bundle_emb.{token}.{name}": tensor for name, tensor in tensors.items()}


def param_groups(cfg: FinetuneConfig, lora: list[torch.nn.Parameter],
                 vectors: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
    """The LoRA at --lr with weight decay; the vectors at --embedding-lr without (the loop scales each
    group's rate by its `lr_scale`, so both follow one warm-up and cosine)."""
    return [
        {"params": lora, "weight_decay": LORA_WEIGHT_DECAY},
        {"params": vectors, "weight_decay": 0.0, "lr_scale": cfg.embedding_learning_rate / cfg.learning_rate},
    ]
