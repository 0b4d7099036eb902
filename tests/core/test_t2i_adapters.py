"""A T2I-Adapter folder (compact weights, as keypaint ships its sketch control) steers the Painter through
diffusers' adapter pipeline; what that pipeline cannot run, and a U-Net it does not fit, are refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, T2IAdapter
from PIL import Image, ImageDraw

from keypaint.builtin.architecture import TRAIN_SCHEDULE, build_unet, build_vae, size_preset
from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.core.control import ControlUnit, Preprocess
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.t2i_adapters import is_adapter, load_control_folder
from keypaint.errors import InvalidParams, ModelError
from keypaint.models.compact import FILENAME, save_compact
from keypaint.models.loaded import LoadedModel, ModelKind

BASE = GenerationParams("red circle", steps=2, width=32, height=32, seed=3)


@pytest.fixture(scope="module")
def tiny_keypaint() -> LoadedModel:
    """The built-in model's architecture at its tiny size (32 px), random weights, MiniLM text encoder."""
    vae_size, unet_size = size_preset("tiny")
    torch.manual_seed(0)
    tokenizer, text_encoder = load_text_encoder("cpu", torch.float32)
    pipe = StableDiffusionPipeline(
        vae=build_vae(vae_size).eval(), text_encoder=text_encoder, tokenizer=tokenizer,
        unet=build_unet(unet_size).eval(), scheduler=DDIMScheduler(**TRAIN_SCHEDULE), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    return LoadedModel(name="tiny-keypaint", kind=ModelKind.KEYPAINT, pipe=pipe)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_keypaint: LoadedModel) -> Path:
    """<home>/controlnet/lines: a random T2I-Adapter for the tiny model, config + compact weights."""
    home = tmp_path_factory.mktemp("adapter-home")
    torch.manual_seed(1)
    adapter = T2IAdapter(in_channels=3, channels=list(tiny_keypaint.pipe.unet.config.block_out_channels),
                         num_res_blocks=1, downscale_factor=8)
    folder = home / "controlnet" / "lines"
    folder.mkdir(parents=True)
    adapter.save_config(folder)
    save_compact(adapter.state_dict(), folder / FILENAME)
    return home


def sketch() -> Image.Image:
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).line((4, 16, 28, 16), fill="black", width=2)
    return image


def unit(**kwargs: object) -> ControlUnit:
    return ControlUnit("lines", image=sketch(), preprocess=Preprocess.SCRIBBLE, **kwargs)  # type: ignore[arg-type]


def pixels(painter: Painter, params: GenerationParams) -> list[np.ndarray]:
    return [np.asarray(r.image, dtype=np.float32) for r in painter.generate(params)]


def test_compact_adapter_folder_loads_as_saved(home: Path) -> None:
    folder = home / "controlnet" / "lines"
    assert is_adapter(folder)
    adapter = load_control_folder(folder, torch.float32)
    assert isinstance(adapter, T2IAdapter) and adapter.config.channels == [16, 32]
    assert not any(p.is_meta for p in adapter.parameters())


def test_adapter_steers_every_picture_of_a_batch_and_is_recorded(home: Path, tiny_keypaint: LoadedModel
                                                                 ) -> None:
    painter = Painter(tiny_keypaint, home=home)
    plain = pixels(painter, replace(BASE, batch_size=2))
    results = painter.generate(replace(BASE, batch_size=2, control_units=(unit(weight=1.5),)))
    steered = [np.asarray(r.image, dtype=np.float32) for r in results]
    for a, b in zip(plain, steered, strict=True):
        assert np.abs(a - b).mean() > 1.0  # the adapter changes each picture of the batch
    assert results[0].extra["ControlNet 0"].startswith("Module: scribble_xdog, Model: lines [")
    weaker = pixels(painter, replace(BASE, control_units=(unit(weight=0.5),)))[0]
    assert np.abs(weaker - steered[0]).mean() > 0.5  # the weight scales its features


@pytest.mark.parametrize(("change", "words"), [
    ({"control_units": (unit(start=0.2),)}, "steers every step"),
    ({"control_units": (unit(), unit())}, "steers alone"),
    ({"control_units": (unit(guess_mode=True),)}, "no control mode"),
    ({"control_units": (unit(),), "init_image": Image.new("RGB", (32, 32)), "strength": 0.5},
     "txt2img only"),
])
def test_what_the_adapter_pipeline_cannot_run_is_refused(home: Path, tiny_keypaint: LoadedModel,
                                                         change: dict, words: str) -> None:
    with pytest.raises(InvalidParams, match=words):
        Painter(tiny_keypaint, home=home).generate(replace(BASE, **change))


def test_adapter_for_other_blocks_is_refused(home: Path, tiny_sd1: LoadedModel) -> None:
    painter = Painter(tiny_sd1, home=home)
    with pytest.raises(ModelError, match=r"T2I-Adapter lines.*plain down block"):
        painter.generate(replace(BASE, width=64, height=64, control_units=(unit(),)))
