"""Saving tiny SD3/Flux pipelines the way people download them: BFL/Stability names, ComfyUI whole checkpoints
(`model.diffusion_model.`, `text_encoders.*.transformer.`, `first_stage_model.`/`vae.`), diffusers names,
separate ComfyUI text-encoder files, fp8 weights and GGUF transformers.

The SD3 table below is the inverse of diffusers' `convert_sd3_transformer_checkpoint_to_diffusers`, and
`test_flow_layouts` checks that diffusers' converter turns it back into the exact tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from safetensors.torch import save_file

from keypaint.models.flow_convert import flux_to_original

from .ldm_layout import vae_to_ldm


def _swap(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def sd3_to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers SD3 transformer state dict in Stability's original names."""
    out: dict[str, torch.Tensor] = {"pos_embed": sd["pos_embed.pos_embed"]}
    same = {"x_embedder.proj": "pos_embed.proj", "context_embedder": "context_embedder",
            "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
            "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2",
            "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
            "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2", "final_layer.linear": "proj_out"}
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks."))
    for i in range(layers):
        o, d = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        same |= {f"{o}x_block.attn.proj": f"{d}attn.to_out.0",
                 f"{o}context_block.attn.proj": f"{d}attn.to_add_out",
                 f"{o}x_block.attn2.proj": f"{d}attn2.to_out.0",
                 f"{o}x_block.adaLN_modulation.1": f"{d}norm1.linear",
                 f"{o}x_block.mlp.fc1": f"{d}ff.net.0.proj", f"{o}x_block.mlp.fc2": f"{d}ff.net.2",
                 f"{o}context_block.mlp.fc1": f"{d}ff_context.net.0.proj",
                 f"{o}context_block.mlp.fc2": f"{d}ff_context.net.2",
                 f"{o}x_block.attn.ln_q": f"{d}attn.norm_q", f"{o}x_block.attn.ln_k": f"{d}attn.norm_k",
                 f"{o}context_block.attn.ln_q": f"{d}attn.norm_added_q",
                 f"{o}context_block.attn.ln_k": f"{d}attn.norm_added_k",
                 f"{o}x_block.attn2.ln_q": f"{d}attn2.norm_q", f"{o}x_block.attn2.ln_k": f"{d}attn2.norm_k"}
        for param in ("weight", "bias"):
            for o_qkv, names in ((f"{o}x_block.attn.qkv", ("attn.to_q", "attn.to_k", "attn.to_v")),
                                 (f"{o}context_block.attn.qkv", ("attn.add_q_proj", "attn.add_k_proj",
                                                                 "attn.add_v_proj")),
                                 (f"{o}x_block.attn2.qkv", ("attn2.to_q", "attn2.to_k", "attn2.to_v"))):
                parts = [sd.get(f"{d}{n}.{param}") for n in names]
                if all(p is not None for p in parts):
                    out[f"{o_qkv}.{param}"] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
            ctx = sd[f"{d}norm1_context.linear.{param}"]
            out[f"{o}context_block.adaLN_modulation.1.{param}"] = _swap(ctx) if i == layers - 1 else ctx
    for o_name, d_name in same.items():
        for param in ("weight", "bias"):
            if f"{d_name}.{param}" in sd:
                out[f"{o_name}.{param}"] = sd[f"{d_name}.{param}"]
    for param in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{param}"] = _swap(sd[f"norm_out.linear.{param}"])
    return out


def transformer_original(pipe: StableDiffusion3Pipeline | FluxPipeline) -> dict[str, torch.Tensor]:
    sd = {k: v.detach().clone() for k, v in pipe.transformer.state_dict().items()}
    return flux_to_original(sd) if isinstance(pipe, FluxPipeline) else sd3_to_original(sd)


def encoder_files(pipe: StableDiffusion3Pipeline | FluxPipeline) -> dict[str, dict[str, torch.Tensor]]:
    """ComfyUI's separate text-encoder files (transformers' own names)."""
    encoders = {"clip_l": pipe.text_encoder}
    if isinstance(pipe, FluxPipeline):
        encoders["t5xxl"] = pipe.text_encoder_2
    else:
        encoders |= {"clip_g": pipe.text_encoder_2, "t5xxl": pipe.text_encoder_3}
    files = {}
    for name, module in encoders.items():
        sd = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
        if name != "t5xxl" and not any(k.startswith("text_model.") for k in sd):
            sd = {(k if k == "text_projection.weight" else f"text_model.{k}"): v for k, v in sd.items()}
        if name == "t5xxl":
            sd.pop("encoder.embed_tokens.weight", None)  # ComfyUI's files keep only `shared`
        if name == "clip_l" and isinstance(pipe, StableDiffusion3Pipeline):
            sd.pop("text_projection.weight", None)  # SD3's CLIP-L projection is the identity
        files[name] = sd
    return files


def whole_checkpoint(pipe: StableDiffusion3Pipeline | FluxPipeline, *, comfy_prefix: bool = True
                     ) -> dict[str, torch.Tensor]:
    """A ComfyUI-style whole checkpoint: transformer, text encoders and VAE in one file."""
    prefix = "model.diffusion_model." if comfy_prefix else ""
    out = {f"{prefix}{k}": v for k, v in transformer_original(pipe).items()}
    for name, sd in encoder_files(pipe).items():
        out |= {f"text_encoders.{name}.transformer.{k}": v for k, v in sd.items()}
    vae_prefix = "vae." if isinstance(pipe, FluxPipeline) else "first_stage_model."
    out |= {f"{vae_prefix}{k}": v for k, v in vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config).items()}
    return out


def save(tensors: dict[str, torch.Tensor], path: Path, fp8: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fp8:
        tensors = {k: v.to(torch.float8_e4m3fn) if v.dim() == 2 else v for k, v in tensors.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def save_gguf(pipe: StableDiffusion3Pipeline | FluxPipeline, path: Path) -> Path:
    """The transformer as a GGUF file in diffusers' names (F16 tensors, Q8_0 where rows fit 32-blocks)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch="flux" if isinstance(pipe, FluxPipeline) else "sd3")
    for name, tensor in pipe.transformer.state_dict().items():
        data = tensor.detach().float().numpy()
        if data.ndim == 2 and data.shape[-1] % 32 == 0:
            quantised = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
