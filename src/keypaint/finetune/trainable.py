"""What a fine-tune trains, per method: the weights, their optimiser groups, checkpoints and the output.

| method | trained | written |
| --- | --- | --- |
| lora, dreambooth, dora, loha, lokr, b-lora | U-Net adapter layers (`adapters`) | kohya/LyCORIS file |
| pivotal | a LoRA and the new word's vectors (`finetune.pivotal`) | LoRA file with `bundle_emb.*` |
| textual-inversion | the new word's vectors only | A1111 embedding |
| full | every U-Net weight (`finetune.full`) | diffusers model folder |

SD3 and Flux train a LoRA on the transformer (`finetune.flow`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from keypaint.finetune.adapters import adapter_tensors, add_adapter, b_lora_blocks
from keypaint.finetune.config import FinetuneConfig, Method
from keypaint.finetune.flow import FLOW_TARGETS, flow_lora_tensors
from keypaint.finetune.full import WEIGHT_DECAY, unet_state, unfreeze
from keypaint.finetune.lora import ADAPTER, add_lora, load_lora_state, lora_state, remove_lora
from keypaint.finetune.pivotal import bundle_tensors, param_groups
from keypaint.finetune.textual_inversion import (
    embedding_tensors,
    initial_vectors,
    load_vectors_state,
    vectors_state,
)
from keypaint.models.adapter_format import FinetuneInfo, embedding_header, lora_header
from keypaint.models.loaded import LoadedModel

# kohya's `ss_network_module` / `ss_network_args` for the files that are not plain LoRAs (LoRA browsers)
NETWORK = {
    Method.DORA: ("lycoris.kohya", {"algo": "lora", "dora_wd": "True"}),
    Method.LOHA: ("lycoris.kohya", {"algo": "loha"}),
    Method.LOKR: ("lycoris.kohya", {"algo": "lokr"}),
}


@dataclass
class Trainable:
    """One run's trained weights and how they are saved, written and taken off the model again."""

    cfg: FinetuneConfig
    model: LoadedModel
    params: list[torch.nn.Parameter]  # everything the optimiser steps
    vectors: list[torch.nn.Parameter]  # the new word's vectors (textual inversion, pivotal), else []
    groups: list[dict[str, Any]]  # the optimiser's parameter groups
    original: dict[str, torch.Tensor] | None = None  # full, on a model handed in: its weights, given back

    @property
    def unet(self) -> torch.nn.Module:
        return self.model.denoiser

    def state(self) -> dict[str, torch.Tensor]:
        """Checkpoint form: the adapter (peft's names) and the vectors (`vectors.i`), or the whole U-Net."""
        if self.cfg.method is Method.FULL:
            return unet_state(self.unet)
        adapter = lora_state(self.unet) if self.cfg.method.makes_lora else {}
        return {**adapter, **vectors_state(self.vectors)}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        if self.cfg.method is Method.FULL:
            self.unet.load_state_dict(state)
            return
        if self.cfg.method.makes_lora:
            load_lora_state(self.unet, {k: v for k, v in state.items() if not k.startswith("vectors.")})
        if self.vectors:
            load_vectors_state(self.vectors, state)

    def file(self, info: FinetuneInfo) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The output file's tensors and header (every method but full, which writes a folder)."""
        cfg, model = self.cfg, self.model
        if not cfg.method.makes_lora:
            return embedding_tensors(model, self.vectors), embedding_header(info, model.kind)
        header = lora_header(info, model.kind, cfg.lora_rank, float(cfg.lora_rank))
        if model.kind.is_flow:
            return flow_lora_tensors(lora_state(self.unet)), header
        tensors = adapter_tensors(lora_state(self.unet), cfg.method, cfg.lora_rank)
        if cfg.method is Method.PIVOTAL:
            tensors.update(bundle_tensors(cfg.token, model, self.vectors))
        if cfg.method in NETWORK:
            module, args = NETWORK[cfg.method]
            header.update(ss_network_module=module, ss_network_args=json.dumps(args))
        return tensors, header

    def settings(self) -> dict[str, Any]:
        """What the method adds to the file's recorded settings."""
        if self.cfg.method is Method.B_LORA:
            return {"blocks": b_lora_blocks(self.unet, self.model.kind, self.cfg.lora_targets)}
        return {}

    def give_back(self) -> None:
        """The model as it was: no training adapter, its own weights, frozen, eval mode."""
        unet = self.unet
        if ADAPTER in (getattr(unet, "peft_config", None) or {}):
            remove_lora(unet)
        if self.original is not None:
            unet.load_state_dict(self.original)
        unet.requires_grad_(False).eval()


def setup(cfg: FinetuneConfig, model: LoadedModel, device: torch.device, *, keep_original: bool) -> Trainable:
    """Add (or unfreeze) what `cfg.method` trains; `keep_original`: full keeps a copy to give back."""
    unet = model.denoiser
    vectors: list[torch.nn.Parameter] = []
    if cfg.method.trains_vectors:
        vectors = [torch.nn.Parameter(v.data.to(device))
                   for v in initial_vectors(model, cfg.start_word, cfg.vector_count)]
    if model.kind.is_flow:
        params = add_lora(unet, cfg.lora_rank, cfg.seed, FLOW_TARGETS)
        return Trainable(cfg, model, params, [], [{"params": params, "weight_decay": WEIGHT_DECAY}])
    if cfg.method is Method.FULL:
        original = unet_state(unet) if keep_original else None
        params = unfreeze(unet)
        return Trainable(cfg, model, params, [], [{"params": params, "weight_decay": WEIGHT_DECAY}], original)
    if not cfg.method.makes_lora:  # textual inversion
        unet.requires_grad_(False)
        return Trainable(cfg, model, list(vectors), vectors, [{"params": vectors, "weight_decay": 0.0}])
    lora = add_adapter(unet, cfg, model.kind)
    if cfg.method is Method.PIVOTAL:
        return Trainable(cfg, model, lora + vectors, vectors, param_groups(cfg, lora, vectors))
    return Trainable(cfg, model, lora, [], [{"params": lora, "weight_decay": WEIGHT_DECAY}])
