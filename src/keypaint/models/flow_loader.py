"""Building an SD3 or Flux.1 pipeline from single files, offline, with the configs keypaint ships.

1. the transformer: diffusers' `from_single_file` on the file's tensors (SD3 in any layout; Flux in
   diffusers' names, BFL's converted first by `flow_convert`), or on a GGUF file through diffusers' GGUF
   quantiser (the weights stay quantised and are dequantised layer by layer);
2. the VAE: from the file (`first_stage_model.*` or `vae.*`) or a separate file;
3. the text encoders: from the file (`text_encoders.{clip_l,clip_g,t5xxl}.transformer.*`) or separate files
   in transformers' names, through diffusers' CLIP and T5 single-file builders;
4. tokenizers and the scheduler from the shipped config folder.

8-bit float weights (`float8_e4m3fn`, ComfyUI's "fp8" files) are upcast to the load dtype; ComfyUI's
scaled fp8 files (`*.scale_weight`) are multiplied out first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from diffusers import (
    FluxPipeline,
    FluxTransformer2DModel,
    GGUFQuantizationConfig,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from diffusers.loaders.single_file_utils import (
    create_diffusers_clip_model_from_ldm,
    create_diffusers_t5_model_from_checkpoint,
)

from keypaint.errors import ModelError
from keypaint.models.assemble import check_complete
from keypaint.models.checkpoint_files import load_safetensors
from keypaint.models.configs import load_scheduler, load_tokenizer, read_json
from keypaint.models.flow_convert import flux_to_diffusers, unknown_flux_keys
from keypaint.models.flow_files import GGUF_SUFFIX
from keypaint.models.flow_layout import ENCODER_PREFIX, ENCODERS, VAE_PREFIXES, Encoder, FlowDetected
from keypaint.models.loaded import ModelKind
from keypaint.models.single_file import _build, vae_from_checkpoint

FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
FlowPipeline = StableDiffusion3Pipeline | FluxPipeline


def upcast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """8-bit float tensors as `dtype` (scaled ones multiplied by their `scale_weight`); others unchanged."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(".scale_weight") or key == "scaled_fp8" or key.endswith(".scale_input"):
            continue
        if tensor.dtype in FP8:
            scale = state.get(key.removesuffix(".weight") + ".scale_weight")
            tensor = tensor.to(torch.float32) * (scale.to(torch.float32) if scale is not None else 1.0)
            tensor = tensor.to(dtype)
        out[key] = tensor
    return out


def read_tensors(path: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return upcast(load_safetensors(path), dtype)


def _transformer(path: Path, state: dict[str, torch.Tensor] | None, detected: FlowDetected, config: Path,
                 dtype: torch.dtype, name: str) -> torch.nn.Module:
    cls = FluxTransformer2DModel if detected.kind is ModelKind.FLUX else SD3Transformer2DModel
    common: dict[str, Any] = {"config": str(config), "subfolder": "transformer", "torch_dtype": dtype,
                              "local_files_only": True}
    if state is None:  # a GGUF file: diffusers reads and converts it, the weights stay quantised
        gguf = GGUFQuantizationConfig(compute_dtype=dtype)
        return _build(name, "transformer", lambda: cls.from_single_file(str(path), quantization_config=gguf,
                                                                        **common))
    own = {k.removeprefix(detected.prefix): v for k, v in state.items() if k.startswith(detected.prefix)
           and not k.startswith(("text_encoders.", *VAE_PREFIXES))}
    if detected.kind is ModelKind.FLUX and detected.layout != "diffusers":
        unknown = unknown_flux_keys(own)
        if unknown:
            raise ModelError(f"{name}: weights Flux.1 does not have ({', '.join(unknown[:3])} ...); "
                             "a Flux variant keypaint cannot read, or a mixed file")
        transformer_config = read_json(config / "transformer" / "config.json")
        inner = int(transformer_config["num_attention_heads"]) * int(transformer_config["attention_head_dim"])
        own = flux_to_diffusers(own, inner)
    # diffusers' SD3 converter pops the keys it reads: it gets its own dict
    return _build(name, "transformer", lambda: cls.from_single_file(dict(own), **common))


def _encoder(encoder: Encoder, weights: dict[str, torch.Tensor], config: Path, subfolder: str,
             dtype: torch.dtype, name: str) -> torch.nn.Module:
    """A text encoder from weights under `text_encoders.<encoder>.transformer.`, shaped by `config`."""
    index = read_json(config / "model_index.json")
    cls = getattr(transformers, str((index.get(subfolder) or [None, ""])[1]), None)
    if cls is None:
        raise ModelError(f"{config.name}: no text encoder class for {subfolder}")
    if encoder == "t5xxl":
        make = lambda: create_diffusers_t5_model_from_checkpoint(  # noqa: E731
            cls, weights, config=str(config), subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    else:
        make = lambda: create_diffusers_clip_model_from_ldm(  # noqa: E731
            cls, weights, config=str(config), subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    module = _build(name, f"{encoder} text encoder", make)
    return module


def _prefixed(encoder: Encoder, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A separate encoder file's tensors under the prefix of a whole checkpoint (what diffusers reads)."""
    prefix = ENCODER_PREFIX.format(encoder)
    return {k if k.startswith(prefix) else prefix + k: v for k, v in state.items()}


def _tied_t5(own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """T5's input embedding under both names it has (`shared`, `encoder.embed_tokens`); files keep one."""
    prefix = ENCODER_PREFIX.format("t5xxl")
    names = (f"{prefix}shared.weight", f"{prefix}encoder.embed_tokens.weight")
    present = [own[n] for n in names if n in own]
    return {**own, **{n: present[0] for n in names if n not in own}} if present else own


def load_flow_pipeline(path: Path, detected: FlowDetected, *, encoders: dict[Encoder, Path], vae: Path | None,
                       dtype: torch.dtype, config: Path, name: str, no_t5: bool = False) -> FlowPipeline:
    """The SD3 or Flux pipeline of `path` (a checkpoint or a transformer file) and its separate parts;
    `no_t5`: SD3 without its T5 encoder (diffusers gives zeros in its place)."""
    gguf = path.suffix.lower() == GGUF_SUFFIX
    state = None if gguf else read_tensors(path, dtype)
    # 1. transformer
    transformer = _transformer(path, state, detected, config, dtype, name)
    # 2. VAE: a separate file wins over the checkpoint's own
    vae_state = read_tensors(vae, dtype) if vae is not None else state or {}
    vae_name = vae.name if vae is not None else name
    for prefix in VAE_PREFIXES:
        if f"{prefix}decoder.conv_in.weight" in vae_state:
            vae_state = {k.removeprefix(prefix): v for k, v in vae_state.items() if k.startswith(prefix)}
            break
    vae_model = vae_from_checkpoint(vae_state, config, "vae", dtype, vae_name)
    if vae_model.config.latent_channels != 16:
        raise ModelError(f"{vae_name}: a VAE with {vae_model.config.latent_channels} latent channels; "
                         f"{detected.kind.value} models need one with 16")
    # 3. text encoders with their tokenizers, 4. scheduler
    components: dict[str, Any] = {"transformer": transformer, "vae": vae_model}
    for i, encoder in enumerate(ENCODERS[detected.kind]):
        sub = "text_encoder" if i == 0 else f"text_encoder_{i + 1}"
        if no_t5 and encoder == "t5xxl":
            components[sub] = components[sub.replace("text_encoder", "tokenizer")] = None
            continue
        source = encoders.get(encoder)
        weights = _prefixed(encoder, read_tensors(source, dtype)) if source is not None else (state or {})
        prefix = ENCODER_PREFIX.format(encoder)
        own = {k: v for k, v in weights.items() if k.startswith(prefix)}
        own = _tied_t5(own) if encoder == "t5xxl" else own
        components[sub] = _encoder(encoder, own, config, sub, dtype, source.name if source else name)
        tokenizer = sub.replace("text_encoder", "tokenizer")
        components[tokenizer] = load_tokenizer(config, tokenizer)
    components["scheduler"] = load_scheduler(config)
    for part in ("transformer", "vae"):
        check_complete(components[part], name, part)
    cls = FluxPipeline if detected.kind is ModelKind.FLUX else StableDiffusion3Pipeline
    return cls(**components)
