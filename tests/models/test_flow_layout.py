"""SD3/Flux detection from key names, and keypaint's Flux table against diffusers' converter."""

from __future__ import annotations

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_flux_transformer_checkpoint_to_diffusers,
    convert_sd3_transformer_checkpoint_to_diffusers,
)

from keypaint.errors import ModelError
from keypaint.models.flow_convert import flux_rules, flux_to_diffusers, flux_to_original
from keypaint.models.flow_layout import detect_flow, encoder_of
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny_flow import tiny_flux_pipeline, tiny_sd3_pipeline

from .flow_saving import sd3_to_original

FLUX_BFL = {"double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight"}


@pytest.mark.parametrize(("keys", "config", "layout"), [
    (FLUX_BFL | {"guidance_in.in_layer.weight"}, "flux-dev", "original"),
    (FLUX_BFL, "flux-schnell", "original"),
    ({f"model.diffusion_model.{k}" for k in FLUX_BFL}, "flux-schnell", "comfyui"),
    ({"transformer_blocks.0.attn.add_q_proj.weight", "single_transformer_blocks.0.proj_mlp.weight",
      "time_text_embed.guidance_embedder.linear_1.weight"}, "flux-dev", "diffusers"),
    ({"joint_blocks.0.x_block.attn.qkv.weight", "joint_blocks.23.x_block.mlp.fc1.weight"}, "sd3-medium",
     "original"),
    ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
      "model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight",
      "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight"}, "sd35-medium", "comfyui"),
    ({"joint_blocks.0.x_block.attn.qkv.weight", "joint_blocks.37.x_block.mlp.fc1.weight"}, "sd35-large",
     "original"),
    ({"transformer_blocks.0.attn.add_q_proj.weight", "pos_embed.proj.weight"}, "sd3-medium", "diffusers"),
])
def test_family_variant_and_layout_come_from_the_keys(keys: set[str], config: str, layout: str) -> None:
    detected = detect_flow(dict.fromkeys(keys), "x.safetensors")

    assert detected is not None
    assert (detected.config, detected.layout) == (config, layout)
    assert detected.kind is (ModelKind.FLUX if config.startswith("flux") else ModelKind.SD3)


def test_encoders_vae_and_fp8_inside_a_checkpoint_are_seen() -> None:
    keys = {"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": "F8_E4M3",
            "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight": "F16",
            "vae.decoder.conv_in.weight": "F16"}

    detected = detect_flow(keys, "flux1-dev-fp8.safetensors", keys)

    assert detected is not None
    assert detected.encoders == ("clip_l",) and detected.missing_encoders == ("t5xxl",)
    assert detected.has_vae and detected.fp8


def test_u_net_files_are_no_flow_models_and_mixed_files_are_refused() -> None:
    assert detect_flow(dict.fromkeys(["model.diffusion_model.input_blocks.0.0.weight"]), "sd15") is None
    with pytest.raises(ModelError, match="both a Flux and an SD3 transformer"):
        keys = ["double_blocks.0.img_attn.qkv.weight", "joint_blocks.0.x_block.attn.qkv.weight"]
        detect_flow(dict.fromkeys(keys), "mixed.safetensors")


def test_separate_encoder_files_are_told_apart_by_layout_and_width() -> None:
    assert encoder_of({"text_model.embeddings.token_embedding.weight": (49408, 768)}) == "clip_l"
    assert encoder_of({"text_model.embeddings.token_embedding.weight": (49408, 1280)}) == "clip_g"
    assert encoder_of({"text_model.embeddings.token_embedding.weight": (49408, 32)}) == "clip"
    t5 = {"shared.weight": (32128, 4096), "encoder.block.0.layer.0.SelfAttention.q.weight": (1, 1)}
    assert encoder_of(t5) == "t5xxl"
    assert encoder_of({"decoder.conv_in.weight": (512, 16, 3, 3)}) is None


def test_flux_table_matches_diffusers_converter_at_flux_width() -> None:
    """diffusers' converter fixes the fused width at Flux.1's 3072: compare on tensors of that height."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for rule in flux_rules(1, 1):
        for param, _ in rule.params:
            rows = 7 * 3072 if rule.original.endswith("linear1") else 6
            shape = (rows,) if param == "bias" else (rows, 2)
            state[f"{rule.original}.{param}"] = torch.randn(shape, generator=generator)

    ours = flux_to_diffusers(state, inner_dim=3072)
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))

    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_tiny_transformers_survive_the_round_trip_through_original_names() -> None:
    flux = tiny_flux_pipeline().transformer.state_dict()
    sd3 = tiny_sd3_pipeline(dual_attention=True).transformer.state_dict()

    flux_back = flux_to_diffusers(flux_to_original(flux), inner_dim=32)
    sd3_back = convert_sd3_transformer_checkpoint_to_diffusers(sd3_to_original(sd3))

    for want, got in ((flux, flux_back), (sd3, sd3_back)):
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want)
