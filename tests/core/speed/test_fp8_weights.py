"""--fp8-weights on a U-Net model: weights stored as float8, the picture close to the plain one, recorded."""

from __future__ import annotations

import pytest
import torch

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.speed.options import SpeedOptions
from keypaint.errors import InvalidParams
from keypaint.explain.latent import psnr
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model


def test_u_net_weights_stored_as_fp8() -> None:
    params = GenerationParams(prompt="red apple", steps=2, width=64, height=64, seed=4)
    [plain] = Painter(tiny_model(ModelKind.SD1)).generate(params)
    stored = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(fp8_weights=True))
    [picture] = stored.generate(params)

    attention = stored.model.pipe.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1
    assert attention.to_q.weight.dtype == torch.float8_e4m3fn
    assert picture.extra["FP8 weights"] == "e4m3fn"
    assert psnr(plain.image, picture.image) > 20


def test_fp8_weights_do_not_combine_with_fast() -> None:
    with pytest.raises(InvalidParams, match="fp8_weights: runs on the plain modules"):
        SpeedOptions(fast=True, fp8_weights=True).validate()
