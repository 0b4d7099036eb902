"""DoRA, LoHa, LoKr and B-LoRA on tiny models: the file's layout, and generation paints what training did."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.finetune import FinetuneConfig, FinetuneInfo, Method
from keypaint.finetune.train import finetune
from keypaint.models.checkpoint_files import read_safetensors_header


def config(home: Path, pictures: Path, method: Method, **changes: object) -> FinetuneConfig:
    base = FinetuneConfig(
        images=pictures, token="zqstyle", base="tiny", method=method, steps=2, batch_size=2, lr=3e-2,
        home=home, cpu=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def unet_output(painter: Painter) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        return painter.model.pipe.unet(latents, torch.tensor([500]), context).sample


@pytest.mark.parametrize(
    ("method", "parts", "algo"),
    [
        (Method.DORA, {"lora_down.weight", "lora_up.weight", "alpha", "dora_scale"}, "lora"),
        (Method.LOHA, {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"}, "loha"),
        (Method.LOKR, {"lokr_w1", "lokr_w2", "alpha"}, "lokr"),
    ],
)
def test_saved_file_computes_what_the_trained_layers_computed(
    home: Path, pictures: Path, method: Method, parts: set[str], algo: str
) -> None:
    painter = Painter.load("tiny", home=home)
    before = unet_output(painter)
    trained: list[torch.Tensor] = []

    def last_step(step: int, loss: float) -> None:  # the live peft layers (fp32) after the last step
        if step == 2:
            trained.append(unet_output(painter))

    result = finetune(config(home, pictures, method), model=painter.model, on_step=last_step, progress=False)
    torch.testing.assert_close(unet_output(painter), before, atol=0, rtol=0)  # the model is given back
    assert result.path == home / "loras" / "zqstyle.safetensors"

    header = read_safetensors_header(result.path)
    assert {key.split(".", 1)[1] for key in header.tensors} == parts  # kohya / LyCORIS layout
    assert all(key.startswith("lora_unet_") for key in header.tensors)
    assert header.metadata["ss_network_module"] == "lycoris.kohya"
    assert json.loads(header.metadata["ss_network_args"])["algo"] == algo
    info = FinetuneInfo.from_header(header.metadata)
    assert info is not None and info.method == method.value and info.settings["rank"] == 8

    painter.adapters.activate(GenerationParams(prompt="x", loras=(LoraRef("zqstyle", 1.0),)))
    loaded = unet_output(painter)  # the file (fp16) through keypaint's generate path
    assert (trained[0] - before).abs().max() > 1e-2
    torch.testing.assert_close(loaded, trained[0], atol=2e-3, rtol=1e-3)
    painter.adapters.activate(GenerationParams(prompt="x", loras=(LoraRef("zqstyle", 0.0),)))
    torch.testing.assert_close(unet_output(painter), before, atol=0, rtol=0)  # weight 0: the base model

    params = GenerationParams(prompt="red disc, zqstyle", seed=0, steps=2)
    [plain] = painter.generate(params)
    [styled] = painter.generate(replace(params, loras=(LoraRef("zqstyle", 1.0),)))
    assert styled.extra["Lora weights"] == "zqstyle: 1"
    assert np.abs(pixels(styled.image) - pixels(plain.image)).max() > 0


def test_b_lora_trains_the_style_block_only(home: Path, pictures: Path, tmp_path: Path) -> None:
    style = finetune(config(home, pictures, Method.B_LORA), progress=False)
    header = read_safetensors_header(style.path)
    layers = {key.split(".")[0] for key in header.tensors}
    assert layers and all(name.startswith("lora_unet_up_blocks_0_attentions_1_") for name in layers)
    assert all("_attn1_" in name or "_attn2_" in name for name in layers)  # attention projections only
    info = FinetuneInfo.from_header(header.metadata)
    assert info is not None and info.method == "b-lora"
    assert (info.settings["targets"], info.settings["blocks"]) == ("style", ["up_blocks.0.attentions.1"])

    painter = Painter.load("tiny", home=home)
    params = GenerationParams(prompt="red disc, zqstyle", seed=0, steps=4)
    plain = pixels(painter.generate(params)[0].image)
    styled = pixels(painter.generate(replace(params, loras=(LoraRef("zqstyle", 1.0),)))[0].image)
    assert np.abs(styled - plain).max() > 0

    content = finetune(config(home, pictures, Method.B_LORA, targets="content", run_dir=tmp_path / "run",
                              out=tmp_path / "content.safetensors"), progress=False)
    info = FinetuneInfo.from_header(read_safetensors_header(content.path).metadata)
    assert info is not None and info.settings["blocks"] == ["up_blocks.0.attentions.0"]


def test_b_lora_on_sdxl_uses_the_papers_blocks(home: Path, pictures: Path) -> None:
    result = finetune(config(home, pictures, Method.B_LORA, base="tiny-xl", targets="both"), progress=False)
    info = FinetuneInfo.from_header(read_safetensors_header(result.path).metadata)
    assert info is not None
    assert info.settings["blocks"] == ["up_blocks.0.attentions.0", "up_blocks.0.attentions.1"]
