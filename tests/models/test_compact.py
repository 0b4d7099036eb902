"""Compact weights: int8 blocks with fp16 scales, expanded to the dtype asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from keypaint.builtin import load_part
from keypaint.errors import ModelError
from keypaint.models.compact import FILENAME, compress, expand, is_compact, load_compact, save_compact


def test_compress_then_expand_is_close_and_keeps_small_tensors_in_fp16() -> None:
    torch.manual_seed(0)
    state = {"conv.weight": torch.randn(64, 32, 3, 3), "linear.weight": torch.randn(128, 64) * 1e-3,
             "norm.weight": torch.randn(64), "odd.weight": torch.randn(40, 36), "steps": torch.arange(4)}
    stored = compress(state)
    assert stored["conv.weight"].dtype == torch.int8 and stored["conv.weight::scale"].shape == (64, 9)
    assert stored["norm.weight"].dtype == torch.float16 and stored["odd.weight"].dtype == torch.float16
    assert torch.equal(stored["steps"], state["steps"])
    back = expand(stored, torch.float32)
    assert set(back) == set(state)
    for name in ("conv.weight", "linear.weight"):
        error = (back[name] - state[name]).abs().max() / state[name].abs().max()
        assert 0 < error < 1 / 127  # rounding to 1/127 of each block's largest weight, at most
    assert expand(stored, torch.float16)["conv.weight"].dtype == torch.float16


def test_zero_blocks_and_reserved_names() -> None:
    back = expand(compress({"w": torch.zeros(4, 64)}), torch.float32)
    assert torch.equal(back["w"], torch.zeros(4, 64))
    with pytest.raises(ModelError, match="reserve"):
        compress({"w::scale": torch.zeros(4, 64)})


def test_a_diffusers_model_loads_from_its_config_and_compact_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32)
    vae.save_pretrained(tmp_path / "plain")
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text((tmp_path / "plain" / "config.json").read_text())
    plain_file = tmp_path / "plain" / "diffusion_pytorch_model.safetensors"
    size = save_compact(vae.state_dict(), folder / FILENAME)
    assert size < plain_file.stat().st_size * 0.6  # fp32 here; a quarter plus scales and small tensors
    assert is_compact(folder / FILENAME) and not is_compact(plain_file)
    loaded = load_part(AutoencoderKL, folder, torch.float32)
    assert not loaded.training and loaded.dtype == torch.float32
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = vae.eval()(x).sample, loaded(x).sample
    assert (a - b).abs().max() < 0.05
    plain = load_part(AutoencoderKL, tmp_path / "plain", torch.float32)  # plain folders still load
    name = "decoder.conv_out.weight"
    assert torch.equal(plain.state_dict()[name], vae.state_dict()[name])


def test_a_compact_file_that_does_not_fit_its_config_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32)
    vae.save_pretrained(tmp_path / "vae")
    state = vae.state_dict()
    state.pop("decoder.conv_out.weight")
    save_compact(state, tmp_path / "vae" / FILENAME)
    with pytest.raises(ModelError, match="do not fit"):
        load_part(AutoencoderKL, tmp_path / "vae", torch.float32)
    plain = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelError, match="not a compact"):
        load_compact(plain, torch.float32)
    assert "encoder.conv_in.weight" in load_file(str(plain))
