"""The built-in model's shapes: a small SD-style VAE (f=8, 4 latent channels) and U-Net at 128 px.

Every size is a typed config so tests can build the same classes at toy size. The defaults were chosen by
measuring on a 2-core CPU: U-Net 13.2 M parameters, about 45 ms per CFG step (batch 2) at a 16x16 latent;
VAE 3.9 M parameters, about 65 ms per 128 px decode. Together they stay under 35 MB in fp16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel

from keypaint.builtin.text_encoder import CONTEXT_DIM

# Stable Diffusion's training schedule: scaled_linear betas 0.00085..0.012 over 1000 steps.
TRAIN_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}


@dataclass(frozen=True)
class VaeSize:
    """AutoencoderKL shape; one down block per channel entry, so 4 entries give f=8."""

    channels: tuple[int, ...] = (32, 64, 128, 128)  # block_out_channels, one per resolution
    layers_per_block: int = 1  # resnets per encoder block (the decoder has one more)
    norm_groups: int = 32  # GroupNorm groups; must divide every channel count
    latent_channels: int = 4  # SD's 4-channel latent
    image_size: int = 128  # training and native picture side in pixels

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class UNetSize:
    """UNet2DConditionModel shape: cross-attention at every level but the lowest, as in SD."""

    channels: tuple[int, ...] = (64, 128, 192)  # block_out_channels
    layers_per_block: int = 2  # resnets (+ transformer) per down block
    head_dim: int = 32  # attention heads = channels // head_dim at each level
    norm_groups: int = 32
    sample_size: int = 16  # latent side = image side / VAE factor


SIZES: dict[str, tuple[VaeSize, UNetSize]] = {
    "builtin": (VaeSize(), UNetSize()),
    # For tests and CPU smoke runs: real classes, 32 px pictures, a 4x4 latent.
    "tiny": (VaeSize(channels=(8, 8, 16, 16), norm_groups=4, image_size=32),
             UNetSize(channels=(16, 32), layers_per_block=1, head_dim=8, norm_groups=8, sample_size=4)),
}


def size_preset(name: str) -> tuple[VaeSize, UNetSize]:
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown model size {name!r}; known: {', '.join(SIZES)}") from None


def build_vae(size: VaeSize) -> AutoencoderKL:
    """A freshly initialised VAE; its scaling_factor is set after training from the latents' std."""
    n = len(size.channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=size.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=size.channels, layers_per_block=size.layers_per_block,
        norm_num_groups=size.norm_groups, sample_size=size.image_size,
    )


def build_unet(size: UNetSize, latent_channels: int = 4) -> UNet2DConditionModel:
    """A freshly initialised U-Net conditioned on MiniLM's 384-d token states."""
    n = len(size.channels)
    down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
    # diffusers' SD1-style configs name the head *count* "attention_head_dim" (a known legacy misnomer).
    heads = tuple(max(1, c // size.head_dim) for c in size.channels)
    return UNet2DConditionModel(
        sample_size=size.sample_size, in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=down, up_block_types=up, block_out_channels=size.channels,
        layers_per_block=size.layers_per_block, attention_head_dim=heads, norm_num_groups=size.norm_groups,
        cross_attention_dim=CONTEXT_DIM,
    )


def build_scheduler() -> DPMSolverMultistepScheduler:
    """The scheduler saved with the model: DPM++ 2M Karras over the training schedule (keypaint's default)."""
    return DPMSolverMultistepScheduler(**TRAIN_SCHEDULE, use_karras_sigmas=True, steps_offset=1)


def size_dict(size: VaeSize | UNetSize) -> dict[str, Any]:
    """JSON-friendly form, stored in checkpoints so a resumed run rebuilds the same shapes."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(size).items()}


def vae_size_from(d: dict[str, Any]) -> VaeSize:
    return VaeSize(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def unet_size_from(d: dict[str, Any]) -> UNetSize:
    return UNetSize(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
