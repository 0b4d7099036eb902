"""Tiny seeded random-weight SD3 and Flux.1 pipelines (the real classes at toy size, as diffusers' tests build
them): 16 latent channels, one or two transformer blocks, CLIP and T5 encoders a few dozen wide. They paint
noise in well under a second on a CPU; tests save them in every layout keypaint reads.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import T5Config, T5EncoderModel

from keypaint.models.configs import CONFIGS_DIR, load_tokenizer
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import _text_encoder, clip_tokenizer

TEXT_WIDTH = 32  # each CLIP's hidden width; T5's is 64 for SD3 (the two CLIPs side by side), 32 for Flux


def tiny_t5(seed: int, width: int) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=32128, d_model=width, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                      dense_act_fn="gelu_new",
                      is_encoder_decoder=False, tie_word_embeddings=False)
    return T5EncoderModel(config).eval()


def tiny_flow_vae(seed: int) -> AutoencoderKL:
    """An SD3/Flux-style VAE: 16 latent channels, no quant convs, 2x spatial compression."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=16,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, layers_per_block=1, sample_size=32, use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=1.5305, shift_factor=0.0609,
    ).eval()


def _t5_tokenizer():  # the T5 tokenizer keypaint ships, as the real models' configs load it
    return load_tokenizer(CONFIGS_DIR / "flux-dev", "tokenizer_2")


def tiny_sd3_pipeline(seed: int = 0, *, dual_attention: bool = False) -> StableDiffusion3Pipeline:
    """A tiny SD3 (or, with `dual_attention`, SD3.5-medium-style) pipeline."""
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=2 * TEXT_WIDTH, caption_projection_dim=32,
        pooled_projection_dim=2 * TEXT_WIDTH, pos_embed_max_size=32,
        dual_attention_layers=(0,) if dual_attention else (), qk_norm="rms_norm" if dual_attention else None,
    ).eval()
    clip_l = _text_encoder(seed + 2, TEXT_WIDTH, projection=True)
    with torch.no_grad():  # SD3's CLIP-L has no projection of its own: single files leave it out
        clip_l.text_projection.weight.copy_(torch.eye(TEXT_WIDTH))
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_flow_vae(seed + 1),
        text_encoder=clip_l,
        text_encoder_2=_text_encoder(seed + 3, TEXT_WIDTH, projection=True, act="gelu"),
        text_encoder_3=tiny_t5(seed + 4, 2 * TEXT_WIDTH),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        tokenizer_3=_t5_tokenizer(),
    )


def tiny_flux_pipeline(seed: int = 0, *, dev: bool = True) -> FluxPipeline:
    """A tiny Flux.1 dev (distilled-guidance input) or schnell pipeline."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=dev, axes_dims_rope=(4, 4, 8),
    ).eval()
    dynamic = {"use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
               "max_image_seq_len": 4096}  # Flux.1 dev's: the shift follows the picture size
    scheduler = (FlowMatchEulerDiscreteScheduler(shift=3.0, **dynamic) if dev
                 else FlowMatchEulerDiscreteScheduler(shift=1.0))
    return FluxPipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=tiny_flow_vae(seed + 1),
        text_encoder=_text_encoder(seed + 2, TEXT_WIDTH, projection=False),
        text_encoder_2=tiny_t5(seed + 3, TEXT_WIDTH),
        tokenizer=clip_tokenizer(),
        tokenizer_2=_t5_tokenizer(),
    )


def tiny_flow_model(kind: ModelKind, seed: int = 0) -> LoadedModel:
    """A tiny SD3 or Flux dev model that lives only in memory."""
    pipe = tiny_sd3_pipeline(seed) if kind is ModelKind.SD3 else tiny_flux_pipeline(seed)
    return LoadedModel(name=f"tiny-{kind.value}", kind=kind, pipe=pipe)
