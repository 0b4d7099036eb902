"""The LoRA family's training layers (peft) and the files they are written as.

- `lora`, `dreambooth`, `pivotal`: LoRA (`finetune.lora`), kohya layout.
- `dora`: LoRA with weight decomposition (Liu et al. 2024, peft `use_dora`): W' = m (W + BA) / ||W + BA||
  per output row, m trained. Written in kohya's layout plus each layer's `dora_scale` (m, shape (out, 1)
  or (out, 1, 1, 1), LyCORIS's `wd_on_out`), which ComfyUI and LyCORIS apply and keypaint loads
  (`core.adapter_layouts`); diffusers alone drops it.
- `loha`: delta W = (w1_a w1_b) * (w2_a w2_b) (Hadamard product, Hyeon-Woo et al. 2022); `lokr`: delta W =
  w1 (x) w2 (Kronecker product, Yeh et al. 2024). peft's LoHa/LoKr layers, written in LyCORIS's layout
  (`lora_unet_..._to_q.hada_w1_a` ... / `.lokr_w1`, `.lokr_w2[_a/_b]`, `.alpha`), as kohya's LyCORIS
  networks save them and A1111 and ComfyUI load them. alpha = rank, so every layer applies at scale 1 in
  peft's convention and LyCORIS's alike.
- `b-lora`: LoRA only in the attention blocks that carry style or content (`B_LORA_BLOCKS`).
"""

from __future__ import annotations

import re

import torch
from peft import LoHaConfig, LoKrConfig

from keypaint.core.adapter_layouts import remove_lycoris
from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method
from keypaint.finetune.lora import ADAPTER, TARGETS, add_lora, kohya_state
from keypaint.models.loaded import ModelKind

# B-LoRA (Frenkel et al. 2024): in SDXL's U-Net, up_blocks.0.attentions.0 holds the content of a picture
# and up_blocks.0.attentions.1 its style. Per family: which attentions of the lowest-resolution up block
# that has attention (SDXL: up_blocks.0, as in the paper) are "content" and "style". For SD 1.x/2.x and the
# built-in model (whose lowest-resolution up block has no attention, so up_blocks.1) the same positions
# are a heuristic analogue, not a finding of the paper.
B_LORA_BLOCKS: dict[ModelKind, dict[str, tuple[int, ...]]] = {
    ModelKind.SDXL: {"content": (0,), "style": (1,), "both": (0, 1)},  # the paper's
    ModelKind.SD1: {"content": (0,), "style": (1,), "both": (0, 1)},  # heuristic
    ModelKind.SD2: {"content": (0,), "style": (1,), "both": (0, 1)},  # heuristic
    ModelKind.KEYPAINT: {"content": (0,), "style": (1,), "both": (0, 1)},  # heuristic
}
_ATTENTION = r"attn[12]\.(to_q|to_k|to_v|to_out\.0)"
_PREFIX = {"loha": "hada_", "lokr": "lokr_"}


def add_adapter(unet: torch.nn.Module, cfg: FinetuneConfig, kind: ModelKind) -> list[torch.nn.Parameter]:
    """Freeze the U-Net and add the method's training layers (fp32); returns them.

    A model handed in may carry a painter's LoRAs, switched off: its layers are switched on again (only
    the training adapter is active), and its LoHa/LoKr layers taken off (a LoRA cannot wrap them).
    """
    method, rank = cfg.method, cfg.lora_rank
    if method not in (Method.LOHA, Method.LOKR):
        remove_lycoris(unet)
        if method is Method.B_LORA:
            params = add_lora(unet, rank, cfg.seed, b_lora_targets(unet, kind, cfg.lora_targets))
        else:
            params = add_lora(unet, rank, cfg.seed, cfg.lora_targets, use_dora=method is Method.DORA)
        unet.enable_adapters()
        return params
    unet.requires_grad_(False)
    targets = TARGETS[cfg.lora_targets]
    config = (LoHaConfig if method is Method.LOHA else LoKrConfig)(r=rank, alpha=rank, target_modules=targets)
    with torch.random.fork_rng(devices=[]):  # peft draws the start weights: the same seed, the same run
        torch.manual_seed(cfg.seed)
        unet.add_adapter(config, adapter_name=ADAPTER)
    unet.enable_adapters()
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    return params


def b_lora_targets(unet: torch.nn.Module, kind: ModelKind, which: str) -> str:
    """peft's target regex for B-LoRA's blocks of this U-Net: `which` is style, content or both."""
    table = B_LORA_BLOCKS.get(kind)
    if table is None:
        raise FinetuneError(f"--method b-lora has no block table for {kind.value} models")
    block = next((i for i, up in enumerate(unet.up_blocks) if getattr(up, "attentions", None)), None)
    count = len(unet.up_blocks[block].attentions) if block is not None else 0
    if block is None or max(table[which]) >= count:
        raise FinetuneError(f"--method b-lora: this U-Net's lowest-resolution up block with attention has "
                            f"{count} attention blocks, too few for B-LoRA's content/style split")
    attentions = "|".join(str(i) for i in table[which])
    return rf"up_blocks\.{block}\.attentions\.({attentions})\..*{_ATTENTION}"


def b_lora_blocks(unet: torch.nn.Module, kind: ModelKind, which: str) -> list[str]:
    """The blocks B-LoRA trains, by name (for the file's metadata)."""
    pattern = re.compile(b_lora_targets(unet, kind, which))
    return sorted({name.split(".transformer_blocks")[0] for name, _ in unet.named_modules()
                   if pattern.fullmatch(name)})


def adapter_tensors(state: dict[str, torch.Tensor], method: Method, rank: int,
                    dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The trained layers (peft's names, from `lora_state`) in the file layout of `method`, fp16."""
    if method in (Method.LOHA, Method.LOKR):
        return lycoris_state(state, method, rank, dtype)
    tensors = kohya_state({k: v for k, v in state.items() if ".lora_magnitude_vector" not in k}, dtype)
    for key, magnitude in state.items():  # DoRA: m per output row, as LyCORIS's dora_scale
        if key.endswith(".lora_magnitude_vector"):
            module = key[: -len(".lora_magnitude_vector")]
            out = magnitude.numel()
            shape = (out, 1) if magnitude.dim() == 1 else (out, 1, 1, 1)
            tensors[f"lora_unet_{module.replace('.', '_')}.dora_scale"] = magnitude.reshape(shape).to(dtype)
    return tensors


def lycoris_state(state: dict[str, torch.Tensor], method: Method, rank: int,
                  dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """peft's LoHa/LoKr keys (`PATH.hada_w1_a`) -> LyCORIS's (`lora_unet_PATH.hada_w1_a`, `.alpha` = rank:
    scale 1 in both conventions; LyCORIS ignores it for a LoKr layer whose two factors are whole)."""
    prefix = _PREFIX[method.value]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, part = key.rpartition(".")
        if part.startswith(prefix):
            name = f"lora_unet_{module.replace('.', '_')}"
            out[f"{name}.{part}"] = tensor.to(dtype).contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(rank))
    return out
