"""LoRAs for Flux and SD3 in the layouts people share (kohya, ai-toolkit/diffusers), through diffusers'
loaders, on tiny random models; embeddings are refused on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.errors import ModelError
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny_flow import tiny_flow_model


def lora(path: Path, modules: dict[str, tuple[int, int]], kohya: bool) -> Path:
    """A rank-4 LoRA over `modules` (name -> (out, in)) in kohya's (lora_down/up, alpha) or peft's names."""
    generator = torch.Generator().manual_seed(len(modules))
    tensors = {}
    for name, (out_features, in_features) in modules.items():
        down = torch.randn(4, in_features, generator=generator) * 0.3
        up = torch.randn(out_features, 4, generator=generator) * 0.3
        if kohya:
            tensors |= {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up,
                        f"{name}.alpha": torch.tensor(4.0)}
        else:
            tensors |= {f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up}
    save_file(tensors, str(path))
    return path


LORAS = {
    "flux-kohya": (ModelKind.FLUX, {"lora_unet_double_blocks_0_img_attn_qkv": (96, 32),
                                    "lora_unet_double_blocks_0_img_mlp_0": (128, 32)}, True),
    "flux-ai-toolkit": (ModelKind.FLUX, {
        "transformer.transformer_blocks.0.attn.to_q": (32, 32),
        "transformer.single_transformer_blocks.0.proj_mlp": (128, 32)}, False),
    "sd3-diffusers": (ModelKind.SD3, {"transformer.transformer_blocks.0.attn.to_q": (32, 32),
                                      "transformer.transformer_blocks.1.ff.net.2": (32, 128)}, False),
}


def small(**kwargs: object) -> GenerationParams:
    base = {"prompt": "red apple", "steps": 2, "width": 32, "height": 32, "seed": 5}
    return GenerationParams(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", list(LORAS))
def test_a_lora_changes_the_picture_and_switches_off_again(layout: str, tmp_path: Path) -> None:
    kind, modules, kohya = LORAS[layout]
    path = lora(tmp_path / f"{layout}.safetensors", modules, kohya)
    painter = Painter(tiny_flow_model(kind), home=tmp_path)

    [plain] = painter.generate(small())
    [with_lora] = painter.generate(small(loras=(LoraRef(str(path), 1.0),)))
    [again] = painter.generate(small())

    assert np.abs(np.asarray(with_lora.image, dtype=int) - np.asarray(plain.image, dtype=int)).max() > 0
    assert np.array_equal(np.asarray(again.image), np.asarray(plain.image))
    assert with_lora.extra["Lora weights"] == f"{layout}: 1"


def test_a_lora_of_another_width_is_refused_in_one_line(tmp_path: Path) -> None:
    wide = {"transformer.transformer_blocks.0.attn.to_q": (64, 64)}
    path = lora(tmp_path / "wide.safetensors", wide, False)
    painter = Painter(tiny_flow_model(ModelKind.FLUX), home=tmp_path)

    with pytest.raises(ModelError, match=r"LoRA wide.safetensors does not fit tiny-flux \(flux\)"):
        painter.generate(small(loras=(LoraRef(str(path), 1.0),)))


def test_embeddings_are_refused_on_flow_models(tmp_path: Path) -> None:
    save_file({"emb_params": torch.zeros(1, 32)}, str(tmp_path / "style.safetensors"))
    painter = Painter(tiny_flow_model(ModelKind.SD3), home=tmp_path)

    with pytest.raises(ModelError, match=r"textual-inversion embeddings are for SD 1\.x, 2\.x and SDXL"):
        painter.generate(small(embeddings=(str(tmp_path / "style.safetensors"),)))
