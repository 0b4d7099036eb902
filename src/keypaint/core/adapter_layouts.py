"""LoRA-family files diffusers does not load by itself, as peft adapters: DoRA, LyCORIS LoHa/LoKr, bundles.

diffusers reads kohya's plain LoRAs, but drops a DoRA file's `dora_scale` and reads no LoHa or LoKr U-Net
layers. Here each becomes a named peft adapter on the U-Net, so it is weighted, switched off and deleted
like any LoRA (`set_adapters`, `disable_lora`, `delete_adapters`), and the picture is peft's own output:

- DoRA (`NAME.lora_down.weight`, `.lora_up.weight`, `.alpha`, `.dora_scale`): the magnitude of each output
  row (LyCORIS's `wd_on_out` layout, shape (out, 1) or (out, 1, 1, 1)) becomes peft's
  `lora_magnitude_vector`, alpha / rank is folded into lora_up, and diffusers loads the peft layout.
- LoHa (`hada_w1_a`, `hada_w1_b`, `hada_w2_a`, `hada_w2_b`, `.alpha`) and LoKr (`lokr_w1` or
  `lokr_w1_a`/`_b`, `lokr_w2` or `lokr_w2_a`/`_b`, `.alpha`), as LyCORIS writes them and A1111 and ComfyUI
  read them: peft's LoHa/LoKr layers with the file's ranks and alphas. LyCORIS scales a LoKr module whose
  factors are both whole by 1 (alpha unused); peft scales by alpha / r, so such a module gets alpha = r.
- A1111's bundled embeddings (`bundle_emb.TOKEN.string_to_param.*`, `.emb_params`, or `.clip_l` and
  `.clip_g` for SDXL): the words a pivotal-tuning LoRA was trained with, used while it is.

`NAME` is kohya's: `lora_unet_` + the U-Net module's path with "_" for ".".

peft wraps a layer that already has LoRA layers in LoHa/LoKr ones, but not the other way round for
convolutions (SD 1.x's proj_in/proj_out), so LyCORIS layers stay outermost: files of the LoRA layouts are
loaded first, and `remove_lycoris` takes LoHa/LoKr layers off before a LoRA is added around them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

BUNDLE = "bundle_emb."
LORA_ENDINGS = (".lora_down.weight", ".lora_up.weight", ".lora_A.weight", ".lora_B.weight",
                ".hada_w1_a", ".lokr_w1", ".lokr_w1_a")
_LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
_LOKR = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")


def layout(keys: Iterable[str]) -> str:
    """"loha", "lokr", "dora" or "lora" (what diffusers loads as it is), from a file's tensor names."""
    names = {key.rsplit(".", 1)[-1] for key in keys if not key.startswith(BUNDLE)}
    if names & set(_LOHA):
        return "loha"
    if names & set(_LOKR):
        return "lokr"
    return "dora" if "dora_scale" in names else "lora"


def without_bundle(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(BUNDLE)}


def bundled_embeddings(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{TOKEN: {"emb_params" or "clip_l"/"clip_g": vectors}} of A1111's `bundle_emb.TOKEN.*` tensors."""
    found: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        if not key.startswith(BUNDLE):
            continue
        token, _, part = key[len(BUNDLE):].partition(".")
        name = "emb_params" if part.startswith("string_to_param") else part
        found.setdefault(token, {})[name] = tensor
    return found


def load_adapter(pipe: Any, state: dict[str, torch.Tensor], name: str) -> None:
    """Load a LoRA-family file's tensors (bundled embeddings left out) as the peft adapter `name`."""
    state = without_bundle(state)
    kind = layout(state)
    unet = getattr(pipe, "components", {}).get("unet")  # SD3 and Flux have a transformer instead
    if unet is None and kind != "lora":
        raise ValueError(f"{kind} files are for the U-Net models (SD 1.x, 2.x, SDXL, the built-in model)")
    if unet is not None and kind in ("lora", "dora"):
        remove_lycoris(unet)
    if kind == "lora":
        pipe.load_lora_weights(state, adapter_name=name)
    elif kind == "dora":
        pipe.load_lora_weights(_dora_to_peft(state, unet), adapter_name=name)
    else:
        _load_lycoris(unet, state, name, kind)


def remove_lycoris(unet: torch.nn.Module) -> list[str]:
    """Delete every LoHa/LoKr adapter of the U-Net and unwrap their layers; returns the adapters' names."""
    from peft.tuners.lycoris_utils import LycorisLayer

    names = sorted({name for module in unet.modules() if isinstance(module, LycorisLayer)
                    for name in module._available_adapters})
    if names:
        unet.delete_adapters(names)
    while True:
        found = next(((path, m) for path, m in unet.named_modules() if isinstance(m, LycorisLayer)), None)
        if found is None:
            return names
        path, module = found
        parent, _, child = path.rpartition(".")
        setattr(unet.get_submodule(parent) if parent else unet, child, module.base_layer)


def module_names(unet: torch.nn.Module) -> dict[str, str]:
    """kohya's name of each U-Net module (`lora_unet_down_blocks_0_..._to_q`) -> its path."""
    return {f"lora_unet_{path.replace('.', '_')}": path for path, _ in unet.named_modules() if path}


def _by_module(state: dict[str, torch.Tensor], unet: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The file's tensors grouped by the U-Net module they adapt ({path: {"lora_down.weight": ...}})."""
    names = module_names(unet)
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        prefix, _, part = key.partition(".")
        path = names.get(prefix)
        if path is None:
            what = "text-encoder layers" if prefix.startswith("lora_te") else f"{prefix!r}"
            raise ValueError(f"{what} match no U-Net layer of this model")
        grouped.setdefault(path, {})[part] = tensor
    return grouped


def _base_layer(unet: torch.nn.Module, path: str) -> torch.nn.Module:
    module = unet.get_submodule(path)
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


def _dora_to_peft(state: dict[str, torch.Tensor], unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """kohya DoRA -> diffusers' peft layout (`unet.PATH.lora_A.weight`, `lora_B`, `lora_magnitude_vector`)."""
    out: dict[str, torch.Tensor] = {}
    for path, parts in _by_module(state, unet).items():
        down, up = parts["lora_down.weight"], parts["lora_up.weight"]
        rank = down.shape[0]
        alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        out[f"unet.{path}.lora_A.weight"] = down
        out[f"unet.{path}.lora_B.weight"] = (up.float() * (alpha / rank)).to(up.dtype)
        if "dora_scale" in parts:
            magnitude = _magnitude(parts["dora_scale"], _base_layer(unet, path))
            out[f"unet.{path}.lora_magnitude_vector"] = magnitude
    return out


def _magnitude(scale: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """A per-output-row `dora_scale` in peft's shape: (out,) for a linear layer, (1, out, 1, 1) for a conv."""
    weight = layer.weight
    out = weight.shape[0]
    if scale.numel() != out or scale.shape[0] != out:
        raise ValueError(f"dora_scale of shape {tuple(scale.shape)} is not one value per output row ({out}); "
                         "only the output-axis magnitude (LyCORIS wd_on_out, peft) is supported")
    return scale.reshape(out) if weight.dim() == 2 else scale.reshape(1, out, *[1] * (weight.dim() - 2))


def _load_lycoris(unet: torch.nn.Module, state: dict[str, torch.Tensor], name: str, kind: str) -> None:
    from peft import LoHaConfig, LoKrConfig
    from peft.utils import set_peft_model_state_dict

    grouped = _by_module(state, unet)
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    peft_state: dict[str, torch.Tensor] = {}
    decompose_both = False
    for path, parts in grouped.items():
        factors = {k: v for k, v in parts.items() if k != "alpha"}
        unknown = set(factors) - set(_LOHA if kind == "loha" else _LOKR)
        if unknown:
            raise ValueError(f"{path}: {', '.join(sorted(unknown))}: not a {kind} layer part keypaint reads")
        if kind == "loha":
            rank = factors["hada_w1_b"].shape[0]
            scale_alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        else:
            decompose_both = decompose_both or "lokr_w1_a" in factors
            rank, scale_alpha = _lokr_rank(parts)
        ranks[re.escape(path)], alphas[re.escape(path)] = rank, scale_alpha
        peft_state.update({f"{path}.{k}": v for k, v in factors.items()})
    common = dict(r=max(ranks.values()), alpha=max(ranks.values()), target_modules=sorted(grouped),
                  rank_pattern=ranks, alpha_pattern=alphas)
    config = LoHaConfig(**common) if kind == "loha" else LoKrConfig(**common, decompose_both=decompose_both)
    unet.add_adapter(config, adapter_name=name)
    result = set_peft_model_state_dict(unet, peft_state, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"{unexpected[0]} does not fit this model's {kind} layer")


def _lokr_rank(parts: dict[str, torch.Tensor]) -> tuple[int, float]:
    """peft's (r, alpha) for one LyCORIS LoKr module: r from a factor's low-rank pair; both factors whole:
    an r at which peft keeps them whole, and alpha = r (LyCORIS's scale 1)."""
    for low in ("lokr_w2_a", "lokr_w1_a"):
        if low in parts:
            rank = parts[low].shape[1]
            return rank, float(parts["alpha"]) if "alpha" in parts else float(rank)
    w2 = parts["lokr_w2"]
    rank = max(1, math.ceil(max(w2.shape[0], w2.shape[1]) / 2))
    return rank, float(rank)
