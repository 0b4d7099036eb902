"""The latent space: VAE round trip numbers and the cost of a step in latent vs pixel space."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from keypaint.core.painter import Painter
from keypaint.explain.latent import cost_table, psnr, roundtrip, save_roundtrip, step_costs


def test_psnr_of_known_errors() -> None:
    a = Image.new("RGB", (8, 8), (100, 100, 100))
    assert psnr(a, a) == math.inf
    b = Image.new("RGB", (8, 8), (110, 100, 100))  # MSE = 100 / 3
    assert psnr(a, b) == 10 * math.log10(255**2 / (100 / 3))


def test_roundtrip_reports_compression_and_psnr(painter: Painter, picture: Image.Image,
                                                tmp_path: Path) -> None:
    result = roundtrip(painter.model, picture)
    assert result.latents.shape == (1, 4, 8, 8)
    assert result.compression == 3 * 64 * 64 / (4 * 8 * 8) == 48
    assert result.reconstruction.size == (64, 64)
    assert result.psnr == psnr(result.original, result.reconstruction) and 0 < result.psnr < 100
    with Image.open(save_roundtrip(result, tmp_path / "latent.png")) as image:
        assert image.format == "PNG"


def test_step_costs_count_the_real_networks_flops(painter: Painter) -> None:
    rows = step_costs(painter.model, 32, 32, repeats=1, max_timed_gflops=0)
    latent, pixel, decode = rows
    assert latent.shape == (2, 4, 4, 4) and pixel.shape == (2, 3, 32, 32) and decode.shape == (1, 4, 4, 4)
    # the meta-device count equals counting the real U-Net on real tensors, with attention as plain matmuls
    # (CPU's fused attention kernel is invisible to FlopCounterMode; on meta it decomposes into bmm)
    unet = UNet2DConditionModel.from_config(dict(painter.model.pipe.unet.config))
    unet.set_attn_processor(AttnProcessor())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        unet(torch.randn(2, 4, 4, 4), torch.full((2,), 500), torch.randn(2, 77, 32))
    assert latent.flops == counter.get_total_flops()
    # 64x the positions: convolutions alone cost ~64x, attention more
    assert pixel.flops > 40 * latent.flops
    assert latent.seconds is not None and latent.seconds > 0 and decode.seconds is not None
    assert pixel.seconds is None  # over the timing budget of 0 GFLOPs
    table = cost_table(rows)
    assert table[1][3] == "not timed" and table[0][4] == "1.0x"
    assert float(table[1][4].rstrip("x").replace(",", "")) > 40


def test_pixel_space_step_is_timed_when_small(painter: Painter) -> None:
    rows = step_costs(painter.model, 16, 16, batch=1, repeats=1)
    assert rows[1].seconds is not None and rows[1].seconds > 0
    assert np.isfinite(rows[1].seconds)
