"""DoRA, LoHa and LoKr files and bundled embeddings: each layer applies the delta its formula gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from keypaint.core.adapter_layouts import bundled_embeddings, layout, load_adapter
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.errors import ModelError
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model, tiny_pipeline

LINEAR = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"  # Linear 32 -> 32
CONV = "down_blocks.1.attentions.0.proj_in"  # 1x1 Conv2d 32 -> 32 (SD 1.x)


def kohya(path: str) -> str:
    return f"lora_unet_{path.replace('.', '_')}"


def draw(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.3


def applies(pipe: object, path: str, weight: torch.Tensor) -> None:
    """The (adapted) layer at `path` computes what a plain layer with `weight` computes."""
    layer = pipe.unet.get_submodule(path)  # type: ignore[attr-defined]
    base = layer.get_base_layer()
    with torch.no_grad():
        if isinstance(base, torch.nn.Conv2d):
            x = draw(1, 32, 4, 4, seed=9)
            expected = F.conv2d(x, weight.reshape(base.weight.shape), base.bias)
        else:
            x = draw(3, 32, seed=9)
            expected = F.linear(x, weight, base.bias)
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)


def test_loha_layers_apply_the_hadamard_product_scaled_by_alpha_over_rank() -> None:
    pipe = tiny_pipeline(ModelKind.SD1)
    state, weights = {}, {}
    for i, path in enumerate((LINEAR, CONV)):
        w1a, w1b = draw(32, 4, seed=i), draw(4, 32, seed=i + 10)
        w2a, w2b = draw(32, 4, seed=i + 20), draw(4, 32, seed=i + 30)
        parts = {"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_w2_a": w2a, "hada_w2_b": w2b}
        parts["alpha"] = torch.tensor(2.0)
        state.update({f"{kohya(path)}.{k}": v for k, v in parts.items()})
        base = pipe.unet.get_submodule(path).weight.detach().reshape(32, 32)
        weights[path] = base + (w1a @ w1b) * (w2a @ w2b) * (2.0 / 4)  # Hyeon-Woo et al. 2022, LyCORIS's scale
    assert layout(state) == "loha"
    load_adapter(pipe, state, "loha")
    for path, weight in weights.items():
        applies(pipe, path, weight)


def test_lokr_scale_is_one_for_whole_factors_and_alpha_over_rank_for_a_low_rank_one() -> None:
    pipe = tiny_pipeline(ModelKind.SD1)
    w1, w2 = draw(4, 4, seed=1), draw(8, 8, seed=2)
    w1c, w2a, w2b = draw(4, 4, seed=3), draw(8, 2, seed=4), draw(2, 8, seed=5)
    state = {
        f"{kohya(LINEAR)}.lokr_w1": w1, f"{kohya(LINEAR)}.lokr_w2": w2,
        f"{kohya(LINEAR)}.alpha": torch.tensor(100.0),  # ignored by LyCORIS: neither factor is low-rank
        f"{kohya(CONV)}.lokr_w1": w1c, f"{kohya(CONV)}.lokr_w2_a": w2a, f"{kohya(CONV)}.lokr_w2_b": w2b,
        f"{kohya(CONV)}.alpha": torch.tensor(1.0),
    }
    assert layout(state) == "lokr"
    base = {p: pipe.unet.get_submodule(p).weight.detach().reshape(32, 32).clone() for p in (LINEAR, CONV)}
    load_adapter(pipe, state, "lokr")
    applies(pipe, LINEAR, base[LINEAR] + torch.kron(w1, w2))  # delta W = w1 (x) w2 (Kronecker product)
    applies(pipe, CONV, base[CONV] + torch.kron(w1c, w2a @ w2b) * (1.0 / 2))


def test_dora_scale_is_the_magnitude_of_each_output_row() -> None:
    pipe = tiny_pipeline(ModelKind.SD1)
    down, up, magnitude = draw(4, 32, seed=1), draw(32, 4, seed=2), draw(32, 1, seed=3).abs() + 1
    name = kohya(LINEAR)
    state = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up,
             f"{name}.alpha": torch.tensor(2.0), f"{name}.dora_scale": magnitude}
    base = pipe.unet.get_submodule(LINEAR).weight.detach().clone()
    load_adapter(pipe, dict(state), "dora")
    direction = base + up @ down * (2.0 / 4)
    # DoRA (Liu et al. 2024): W' = m (W + s B A) / ||W + s B A||, the norm of each output row
    applies(pipe, LINEAR, magnitude * direction / direction.norm(dim=1, keepdim=True))

    plain = tiny_pipeline(ModelKind.SD1)  # without dora_scale (what diffusers' loader keeps): not the same
    load_adapter(plain, {k: v for k, v in state.items() if not k.endswith("dora_scale")}, "lora")
    with pytest.raises(AssertionError):
        applies(plain, LINEAR, magnitude * direction / direction.norm(dim=1, keepdim=True))

    other = tiny_pipeline(ModelKind.SD1)  # A1111's input-axis magnitude cannot be expressed in peft
    with pytest.raises(ValueError, match="output-axis magnitude"):
        load_adapter(other, {**state, f"{name}.dora_scale": draw(1, 31, seed=4)}, "dora")


def test_bundled_embeddings_are_found_by_their_word() -> None:
    a, b, c = draw(2, 32, seed=1), draw(3, 32, seed=2), draw(3, 64, seed=3)
    state = {"bundle_emb.zqstyle.string_to_param.*": a, "bundle_emb.zqxl.clip_l": b,
             "bundle_emb.zqxl.clip_g": c, f"{kohya(LINEAR)}.lora_down.weight": draw(4, 32, seed=4)}
    found = bundled_embeddings(state)
    assert set(found) == {"zqstyle", "zqxl"}
    assert found["zqstyle"]["emb_params"] is a and found["zqxl"] == {"clip_l": b, "clip_g": c}
    assert layout(state) == "lora"


def test_a_request_with_a_loha_and_a_lora_on_the_same_convolution(tmp_path: Path) -> None:
    """A LoRA is never put around a LoHa layer (peft cannot wrap a convolution twice that way): the LoRA
    is loaded first, whatever order the request names them in, and the LoHa wraps it."""
    folder = tmp_path / "loras"
    folder.mkdir()
    name = kohya(CONV)
    w1a, w1b, w2a, w2b = draw(32, 4, seed=1), draw(4, 32, seed=2), draw(32, 4, seed=3), draw(4, 32, seed=4)
    loha = {f"{name}.{part}": w for part, w in zip(("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"),
                                                    (w1a, w1b, w2a, w2b), strict=True)}
    down, up = draw(4, 32, 1, 1, seed=5), draw(32, 4, 1, 1, seed=6)
    lora = {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up}
    lora[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(loha, str(folder / "hada.safetensors"))
    save_file(lora, str(folder / "low.safetensors"))
    painter = Painter(tiny_model(ModelKind.SD1), home=tmp_path)
    base = painter.model.pipe.unet.get_submodule(CONV).weight.detach().reshape(32, 32).clone()
    delta_loha = (w1a @ w1b) * (w2a @ w2b)
    delta_lora = up.reshape(32, 4) @ down.reshape(4, 32)
    [both] = painter.generate(GenerationParams(prompt="cat", seed=1, steps=2,
                                               loras=(LoraRef("hada", 1.0), LoraRef("low", 0.5))))
    assert both.extra["Lora weights"] == "hada: 1, low: 0.5"
    applies(painter.model.pipe, CONV, base + delta_loha + 0.5 * delta_lora)
    painter.generate(GenerationParams(prompt="cat", seed=1, steps=2, loras=(LoraRef("low", 1.0),)))
    applies(painter.model.pipe, CONV, base + delta_lora)
    painter.generate(GenerationParams(prompt="cat", seed=1, steps=2, loras=(LoraRef("hada", 0.0),)))
    applies(painter.model.pipe, CONV, base)  # weight 0: off


def test_a_lycoris_file_for_another_model_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    save_file({"lora_unet_no_such_layer.hada_w1_a": draw(32, 4, seed=1)}, str(folder / "odd.safetensors"))
    painter = Painter(tiny_model(ModelKind.SD1), home=tmp_path)
    with pytest.raises(ModelError, match=r"odd.safetensors does not fit .*'lora_unet_no_such_layer' match"):
        painter.generate(GenerationParams(prompt="cat <lora:odd:1>", steps=2))
