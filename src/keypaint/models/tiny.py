"""Tiny seeded random-weight Stable Diffusion models, the way diffusers' own tests build them.

They run in well under a second on a CPU, so tests, benchmarks' smoke paths and the demo use the real
classes and the real loading code at toy size. Their pictures are noise: they exercise code, not quality.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from keypaint.models.loaded import LoadedModel, ModelKind

SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
}


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """The CLIP BPE tokenizer from the files keypaint ships (SD 1.x pads with EOS, SD 2.x/SDXL with "!")."""
    folder = resources.files("keypaint.models") / "configs" / "clip_tokenizer"
    with resources.as_file(folder) as path:
        return CLIPTokenizer(
            str(Path(path) / "vocab.json"),
            str(Path(path) / "merges.txt"),
            pad_token=pad_token,
            model_max_length=77,
        )


def _text_encoder(seed: int, hidden: int, projection: bool, act: str = "quick_gelu") -> CLIPTextModel:
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=49408,
        hidden_act=act,
        projection_dim=hidden,
        max_position_embeddings=77,
    )
    # eos_token_id=2 makes transformers pool at argmax(input_ids), as the original CLIP checkpoints do.
    model_cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model_cls(config).eval()


def _vae(seed: int) -> AutoencoderKL:
    torch.manual_seed(seed)
    # Four blocks give the 8x spatial compression of real SD VAEs.
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=64,
    ).eval()


def tiny_pipeline(
    kind: ModelKind = ModelKind.SD1, *, inpainting: bool = False, seed: int = 0, sample_size: int = 8
) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """A seeded random-weight pipeline of `kind` with the real classes at toy size (64 px by default)."""
    in_channels = 9 if inpainting else 4
    scheduler = DDIMScheduler(**SD_SCHEDULER)
    if kind is ModelKind.SDXL:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(16, 32),
            layers_per_block=1,
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,
            cross_attention_dim=64,
            norm_num_groups=8,
        ).eval()
        return StableDiffusionXLPipeline(
            vae=_vae(seed + 1),
            text_encoder=_text_encoder(seed + 2, 32, projection=False),
            text_encoder_2=_text_encoder(seed + 3, 32, projection=True),
            tokenizer=clip_tokenizer(),
            tokenizer_2=clip_tokenizer("!"),
            unet=unet,
            scheduler=scheduler,
        )
    torch.manual_seed(seed)
    context = 32
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=context,
        attention_head_dim=(2, 4) if kind is ModelKind.SD2 else 8,
        use_linear_projection=kind is ModelKind.SD2,
        norm_num_groups=8,
    ).eval()
    act = "gelu" if kind is ModelKind.SD2 else "quick_gelu"
    return StableDiffusionPipeline(
        vae=_vae(seed + 1),
        text_encoder=_text_encoder(seed + 2, context, projection=False, act=act),
        tokenizer=clip_tokenizer("!" if kind is ModelKind.SD2 else "<|endoftext|>"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_model(kind: ModelKind = ModelKind.SD1, *, inpainting: bool = False, seed: int = 0) -> LoadedModel:
    """`tiny_pipeline` wrapped as a `LoadedModel` that lives only in memory."""
    name = f"tiny-{kind.value}{'-inpainting' if inpainting else ''}"
    return LoadedModel(name=name, kind=kind, pipe=tiny_pipeline(kind, inpainting=inpainting, seed=seed))
