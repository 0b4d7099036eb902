"""The fast path paints the same picture as the plain one; DeepCache stays close; options are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from keypaint.bench.measure import pixel_difference
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.speed import EXACT_TOLERANCE, Offload, SpeedOptions, accelerate
from keypaint.core.speed.deepcache import DeepCacheUNet
from keypaint.core.speed.onnx import OnnxUNet
from keypaint.errors import InvalidParams
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model

PARAMS = GenerationParams(prompt="red apple", steps=3, seed=7)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the module: each shape is exported once."""
    return tmp_path_factory.mktemp("speed-cache")


def picture(painter: Painter, params: GenerationParams = PARAMS) -> np.ndarray:
    return np.asarray(painter.generate(params)[0].image)


def test_onnx_fast_path_paints_the_same_picture_and_reuses_its_export(artefacts: Path) -> None:
    plain = picture(Painter(tiny_model(ModelKind.SD1)))
    fast_painter = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(fast=True, cache_dir=artefacts))
    assert isinstance(fast_painter.speed.pipe.unet, OnnxUNet)
    fast = picture(fast_painter)
    assert pixel_difference(fast, plain)["max_pixel_diff"] <= EXACT_TOLERANCE["cpu"]
    assert fast_painter.speed.pipe.unet.graphs.exported  # this painter made the graph ...
    again = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(fast=True, cache_dir=artefacts))
    assert np.array_equal(picture(again), fast)
    assert not again.speed.pipe.unet.graphs.exported  # ... the next one loaded it from the cache


def test_onnx_graphs_follow_weights_changed_in_place(artefacts: Path) -> None:
    painter = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(fast=True, cache_dir=artefacts))
    before = picture(painter)
    with torch.no_grad():
        painter.model.pipe.unet.conv_out.bias.add_(0.5)  # what fusing a LoRA does to the weights
    changed = picture(painter)
    plain = picture(Painter(painter.model))  # the plain path over the same, changed weights
    assert pixel_difference(changed, plain)["max_pixel_diff"] <= EXACT_TOLERANCE["cpu"]
    assert np.abs(changed.astype(int) - before.astype(int)).max() > 0


def test_fast_img2img_runs_through_the_stand_ins(artefacts: Path) -> None:
    painter = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(fast=True, cache_dir=artefacts))
    init = painter.generate(PARAMS)[0].image
    [result] = painter.generate(
        GenerationParams(prompt="apple", init_image=init, strength=0.5, steps=4, seed=1)
    )
    assert result.image.size == init.size


def test_deep_cache_is_close_recorded_and_removable() -> None:
    model = tiny_model(ModelKind.SD1)
    plain = picture(Painter(model), GenerationParams(prompt="red apple", steps=6, seed=7))
    cached_painter = Painter(tiny_model(ModelKind.SD1), speed=SpeedOptions(deep_cache=2))
    unet = cached_painter.speed.pipe.unet
    assert isinstance(unet, DeepCacheUNet)
    [result] = cached_painter.generate(GenerationParams(prompt="red apple", steps=6, seed=7))
    assert result.extra["DeepCache"] == 2
    difference = pixel_difference(np.asarray(result.image), plain)
    assert difference["max_pixel_diff"] > 0 and difference["psnr_db"] > 20
    plain_unet = unet.remove()
    restored = picture(Painter(cached_painter.model), GenerationParams(prompt="red apple", steps=6, seed=7))
    assert np.array_equal(restored, plain) and type(plain_unet.mid_block).__name__ != "_Reused"


def test_compile_path_traces_the_unet_whole(tmp_path: Path) -> None:
    """The GPU path's rewrites (fused QKV, channels_last, one whole graph) on a CPU, compiler tracing only."""
    model = tiny_model(ModelKind.SD1)
    plain = picture(Painter(tiny_model(ModelKind.SD1)))
    options = SpeedOptions(fast=True, backend="compile", compiler="eager", cache_dir=tmp_path)
    fast = picture(Painter(model, speed=options))
    assert pixel_difference(fast, plain)["max_pixel_diff"] <= EXACT_TOLERANCE["cpu"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (SpeedOptions(deep_cache=0), "deep_cache"),
        (SpeedOptions(fast=True, deep_cache=3), "deep_cache"),
        (SpeedOptions(fast=True, offload=Offload.MODEL), "offload"),
        (SpeedOptions(threads=0), "threads"),
    ],
)
def test_options_that_cannot_run_are_refused(options: SpeedOptions, field: str) -> None:
    with pytest.raises(InvalidParams) as err:
        options.validate()
    assert err.value.field == field


def test_offload_needs_a_gpu() -> None:
    with pytest.raises(InvalidParams, match="GPU"):
        accelerate(tiny_model(ModelKind.SD1).pipe, SpeedOptions(offload=Offload.MODEL))


def test_loras_run_on_the_onnx_path_and_each_setting_gets_its_graph(tmp_path: Path) -> None:
    from tests.core.test_adapters import peft_lora

    peft_lora(tmp_path / "loras" / "style.safetensors")
    plain = Painter(tiny_model(ModelKind.SD1), home=tmp_path)
    options = SpeedOptions(fast=True, cache_dir=tmp_path / "speed")
    fast = Painter(tiny_model(ModelKind.SD1), home=tmp_path, speed=options)
    graphs = fast.speed.pipe.unet.graphs
    pictures = {}
    for prompt in ("cat", "cat <lora:style:1>", "cat <lora:style:0.5>", "cat"):
        params = GenerationParams(prompt=prompt, seed=1, steps=2)
        exact = picture(plain, params)
        pictures[prompt] = picture(fast, params)
        assert pixel_difference(pictures[prompt], exact)["max_pixel_diff"] <= EXACT_TOLERANCE["cpu"]
    assert not np.array_equal(pictures["cat <lora:style:1>"], pictures["cat <lora:style:0.5>"])
    # one export per setting; with the LoRA off again the first graph is the one that runs
    assert len(graphs.exported) == 3
