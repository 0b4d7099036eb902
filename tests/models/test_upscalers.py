"""Upscaler model files: found by name in <home>/upscalers, read safely, built by spandrel, used by hires."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from keypaint.core.hires import HiresOptions
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams, ModelError
from keypaint.models.checkpoint_files import PickleRefused
from keypaint.models.loaded import LoadedModel
from keypaint.models.upscalers import Upscalers, upscale_with, upscalers_dir


def tiny_realesrgan(features: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 4x Real-ESRGAN (basicsr `RRDBNet`, one RRDB block, 8 features) with its real key names."""
    generator = torch.Generator().manual_seed(seed)
    grow = 32  # the growth channels every shared ESRGAN model has (spandrel expects them)

    def conv(out: int, into: int) -> dict[str, torch.Tensor]:
        return {"weight": torch.randn(out, into, 3, 3, generator=generator) * 0.05, "bias": torch.zeros(out)}

    layers = {"conv_first": conv(features, 3)}
    for rdb in (1, 2, 3):
        for k in range(1, 6):
            layers[f"body.0.rdb{rdb}.conv{k}"] = conv(features if k == 5 else grow, features + (k - 1) * grow)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        layers[name] = conv(features, features)
    layers["conv_last"] = conv(3, features)
    return {f"{layer}.{part}": t for layer, params in layers.items() for part, t in params.items()}


def spandrel_here() -> None:
    try:
        import spandrel  # noqa: F401
    except Exception as err:  # not installed, or its torchvision does not fit this torch
        pytest.skip(f"spandrel cannot be imported here ({err.__class__.__name__})")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = upscalers_dir(tmp_path)
    folder.mkdir()
    save_file(tiny_realesrgan(), str(folder / "4x-Tiny.safetensors"))
    (folder / "2x-Pickled.pth").write_bytes(b"not opened")
    return tmp_path


def test_files_are_found_by_name_and_pickles_need_permission(home: Path) -> None:
    upscalers = Upscalers(home)
    assert upscalers.names() == ["2x-Pickled", "4x-Tiny"]
    assert upscalers.find("4x-Tiny").name == "4x-Tiny.safetensors"
    with pytest.raises(PickleRefused, match=r"2x-Pickled\.pth is a pickle"):
        upscalers.find("2x-Pickled")
    assert Upscalers(home, allow_pickle=True).find("2x-Pickled").suffix == ".pth"
    with pytest.raises(InvalidParams, match=r"no upscaler 'ESRGAN_4x'.*Lanczos.*4x-Tiny"):
        upscalers.find("ESRGAN_4x")
    with pytest.raises(InvalidParams, match="not a path"):
        upscalers.find("../4x-Tiny")
    (upscalers_dir(home) / "broken.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ModelError, match=r"not a valid \.safetensors"):
        upscalers.find("broken")


def test_painter_refuses_a_missing_upscaler_before_painting(home: Path, tiny_sd1: LoadedModel) -> None:
    painter = Painter(tiny_sd1, home=home)
    params = GenerationParams(prompt="a", steps=2, width=32, height=32, hires=HiresOptions(upscaler="nope"))
    with pytest.raises(InvalidParams, match="no upscaler 'nope'"):
        painter.plan(params)


def test_spandrel_builds_the_model_and_hires_uses_it(home: Path, tiny_sd1: LoadedModel) -> None:
    spandrel_here()
    model = Upscalers(home).load("4x-Tiny")
    assert model.scale == 4 and model.architecture.name == "ESRGAN"
    picture = Image.fromarray((np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8))
    assert upscale_with(model, picture, (48, 40)).size == (48, 40)  # 4x, then resized to the target
    painter = Painter(tiny_sd1, home=home)
    hires = HiresOptions(scale=2, upscaler="4x-Tiny", strength=0.5)
    [result] = painter.generate(GenerationParams(prompt="a", steps=2, seed=2, width=32, height=32,
                                                 hires=hires))
    assert result.image.size == (64, 64)
