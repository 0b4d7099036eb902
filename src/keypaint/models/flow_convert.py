"""Flux.1's original (BFL) tensor names <-> diffusers' `FluxTransformer2DModel` names, both ways.

diffusers' own `convert_flux_transformer_checkpoint_to_diffusers` fixes the width of the single blocks'
fused `linear1` at Flux.1's 3072, so it cannot read any other width (our tiny test models included); this
table is the same mapping with the width taken from the config. `tests/models/test_flow_convert.py` checks
it against diffusers' converter at Flux.1's width. SD3 keeps diffusers' converter, which reads its sizes
from the checkpoint.

Each rule names a module in both layouts and how its tensors change: renamed, split on the first axis
(the fused q/k/v and single-block `linear1`), or with its two halves swapped (the final adaLN, which
BFL orders shift, scale and diffusers scale, shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Op = Literal["same", "split", "swap"]


@dataclass(frozen=True)
class Rule:
    original: str  # module name in BFL's layout
    diffusers: tuple[str, ...]  # module name(s) in diffusers' layout
    op: Op = "same"
    params: tuple[tuple[str, str], ...] = (("weight", "weight"), ("bias", "bias"))  # (original, diffusers)


_NORM = (("scale", "weight"),)


def flux_rules(double: int, single: int) -> list[Rule]:
    rules = [
        Rule("time_in.in_layer", ("time_text_embed.timestep_embedder.linear_1",)),
        Rule("time_in.out_layer", ("time_text_embed.timestep_embedder.linear_2",)),
        Rule("vector_in.in_layer", ("time_text_embed.text_embedder.linear_1",)),
        Rule("vector_in.out_layer", ("time_text_embed.text_embedder.linear_2",)),
        Rule("guidance_in.in_layer", ("time_text_embed.guidance_embedder.linear_1",)),
        Rule("guidance_in.out_layer", ("time_text_embed.guidance_embedder.linear_2",)),
        Rule("txt_in", ("context_embedder",)),
        Rule("img_in", ("x_embedder",)),
        Rule("final_layer.linear", ("proj_out",)),
        Rule("final_layer.adaLN_modulation.1", ("norm_out.linear",), "swap"),
    ]
    for i in range(double):
        o, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        rules += [
            Rule(f"{o}img_mod.lin", (f"{d}norm1.linear",)),
            Rule(f"{o}txt_mod.lin", (f"{d}norm1_context.linear",)),
            Rule(f"{o}img_attn.qkv", (f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v"), "split"),
            Rule(f"{o}txt_attn.qkv", (f"{d}attn.add_q_proj", f"{d}attn.add_k_proj", f"{d}attn.add_v_proj"),
                 "split"),
            Rule(f"{o}img_attn.norm.query_norm", (f"{d}attn.norm_q",), params=_NORM),
            Rule(f"{o}img_attn.norm.key_norm", (f"{d}attn.norm_k",), params=_NORM),
            Rule(f"{o}txt_attn.norm.query_norm", (f"{d}attn.norm_added_q",), params=_NORM),
            Rule(f"{o}txt_attn.norm.key_norm", (f"{d}attn.norm_added_k",), params=_NORM),
            Rule(f"{o}img_mlp.0", (f"{d}ff.net.0.proj",)),
            Rule(f"{o}img_mlp.2", (f"{d}ff.net.2",)),
            Rule(f"{o}txt_mlp.0", (f"{d}ff_context.net.0.proj",)),
            Rule(f"{o}txt_mlp.2", (f"{d}ff_context.net.2",)),
            Rule(f"{o}img_attn.proj", (f"{d}attn.to_out.0",)),
            Rule(f"{o}txt_attn.proj", (f"{d}attn.to_add_out",)),
        ]
    for i in range(single):
        o, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        rules += [
            Rule(f"{o}modulation.lin", (f"{d}norm.linear",)),
            Rule(f"{o}linear1", (f"{d}attn.to_q", f"{d}attn.to_k", f"{d}attn.to_v", f"{d}proj_mlp"), "split"),
            Rule(f"{o}norm.query_norm", (f"{d}attn.norm_q",), params=_NORM),
            Rule(f"{o}norm.key_norm", (f"{d}attn.norm_k",), params=_NORM),
            Rule(f"{o}linear2", (f"{d}proj_out",)),
        ]
    return rules


def _count(keys: list[str], family: str) -> int:
    numbers = {int(k.split(".")[1]) for k in keys if k.startswith(f"{family}.")}
    return max(numbers) + 1 if numbers else 0


def _swap(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def flux_to_diffusers(state: dict[str, torch.Tensor], inner_dim: int) -> dict[str, torch.Tensor]:
    """A BFL-layout Flux transformer (no prefix) in diffusers' names; `inner_dim` = heads x head width.

    Keys the table does not know are left out and returned by `unknown_flux_keys` for the error message."""
    keys = list(state)
    out: dict[str, torch.Tensor] = {}
    for rule in flux_rules(_count(keys, "double_blocks"), _count(keys, "single_blocks")):
        for o_param, d_param in rule.params:
            tensor = state.get(f"{rule.original}.{o_param}")
            if tensor is None:
                continue
            if rule.op == "swap":
                parts = [_swap(tensor)]
            elif rule.op == "split" and len(rule.diffusers) == 4:  # q, k, v, then the MLP's input
                parts = list(torch.split(tensor, [inner_dim] * 3 + [tensor.shape[0] - 3 * inner_dim], dim=0))
            elif rule.op == "split":
                parts = list(torch.chunk(tensor, len(rule.diffusers), dim=0))
            else:
                parts = [tensor]
            for name, part in zip(rule.diffusers, parts, strict=True):
                out[f"{name}.{d_param}"] = part.contiguous()
    return out


def flux_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers-layout Flux transformer in BFL's names (what `flux_to_diffusers` reads)."""
    keys = list(state)
    out: dict[str, torch.Tensor] = {}
    rules = flux_rules(_count(keys, "transformer_blocks"), _count(keys, "single_transformer_blocks"))
    for rule in rules:
        for o_param, d_param in rule.params:
            parts = [state.get(f"{name}.{d_param}") for name in rule.diffusers]
            if any(p is None for p in parts):
                continue
            tensor = torch.cat([p for p in parts if p is not None], dim=0)
            out[f"{rule.original}.{o_param}"] = _swap(tensor) if rule.op == "swap" else tensor
    return out


def unknown_flux_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of a BFL-layout file that no rule reads (weights of something other than Flux.1)."""
    keys = list(state)
    rules = flux_rules(_count(keys, "double_blocks"), _count(keys, "single_blocks"))
    known = {f"{r.original}.{p}" for r in rules for p, _ in r.params}
    return sorted(k for k in keys if k not in known)
