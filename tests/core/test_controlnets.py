"""ControlNets from <home>/controlnet steer the Painter's pictures: diffusers folders and A1111 single files,
SD 1.x and SDXL, one unit or several, txt2img, img2img and inpainting; the wrong family is refused first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from keypaint.core.control import ControlUnit, Preprocess
from keypaint.core.controlnets import architecture, find_controlnet, list_controlnets, single_file_config
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import ModelError
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model

from .controlnet_files import save_single_file, tiny_controlnet

BASE = GenerationParams("red apple", steps=2, width=64, height=64, seed=3)


def sketch() -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((12, 12, 52, 52), outline="black", width=3)
    return image


@pytest.fixture(scope="module")
def sdxl() -> LoadedModel:
    return tiny_model(ModelKind.SDXL)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_sd1: LoadedModel, sdxl: LoadedModel) -> Path:
    """A keypaint home whose controlnet folder holds tiny ControlNets in every layout people share."""
    home = tmp_path_factory.mktemp("controlnet-home")
    folder = home / "controlnet"
    folder.mkdir()
    for kind, model in (("sd1", tiny_sd1), ("sdxl", sdxl)):
        net = tiny_controlnet(model)
        net.save_pretrained(folder / f"{kind}-folder")
        save_single_file(net, folder / f"{kind}-a1111.safetensors")  # control_model.input_blocks...
        save_single_file(net, folder / f"{kind}-plain.safetensors", prefix="")  # input_blocks., zero_convs.
    save_single_file(tiny_controlnet(tiny_sd1, seed=1), folder / "sd1-other.safetensors")
    return home


def pixels(painter: Painter, params: GenerationParams) -> np.ndarray:
    [result] = painter.generate(params)
    return np.asarray(result.image, dtype=np.float32)


def unit(name: str, **kwargs: object) -> ControlUnit:
    return ControlUnit(name, image=sketch(), preprocess=Preprocess.CANNY, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_every_layout_loads_the_same_controlnet_and_it_steers(
        kind: str, home: Path, tiny_sd1: LoadedModel, sdxl: LoadedModel) -> None:
    painter = Painter(tiny_sd1 if kind == "sd1" else sdxl, home=home)
    plain = pixels(painter, BASE)
    pictures = [pixels(painter, replace(BASE, control_units=(unit(f"{kind}-{layout}"),)))
                for layout in ("folder", "a1111", "plain")]
    assert np.abs(pictures[0] - plain).mean() > 1.0  # the ControlNet changes the picture
    for other in pictures[1:]:
        np.testing.assert_allclose(other, pictures[0], atol=1.0)  # same weights whatever the layout


def test_infotext_names_the_unit_as_sd_webui_controlnet_does(home: Path, tiny_sd1: LoadedModel) -> None:
    [result] = Painter(tiny_sd1, home=home).generate(replace(BASE, control_units=(unit("sd1-a1111"),)))
    text = result.extra["ControlNet 0"]
    assert text.startswith("Module: canny, Model: sd1-a1111 [")
    assert "Weight: 1, " in text and "Guidance Start: 0, Guidance End: 1" in text
    assert text.endswith("Control Mode: Balanced")


def test_two_units_run_as_a_multi_controlnet_and_each_counts(home: Path, tiny_sd1: LoadedModel) -> None:
    painter = Painter(tiny_sd1, home=home)
    one = pixels(painter, replace(BASE, control_units=(unit("sd1-folder"),)))
    two = pixels(painter, replace(BASE, control_units=(unit("sd1-folder"), unit("sd1-other", weight=0.5))))
    off = pixels(painter, replace(BASE, control_units=(unit("sd1-folder"), unit("sd1-other", weight=0.0))))
    assert np.abs(two - one).mean() > 0.5
    np.testing.assert_allclose(off, one, atol=1.0)  # a unit at weight 0 adds nothing


def test_start_end_and_guess_mode_change_the_picture(home: Path, tiny_sd1: LoadedModel) -> None:
    painter = Painter(tiny_sd1, home=home)
    full = pixels(painter, replace(BASE, control_units=(unit("sd1-folder"),)))
    late = pixels(painter, replace(BASE, control_units=(unit("sd1-folder", start=0.5),)))
    guess = pixels(painter, replace(BASE, control_units=(unit("sd1-folder", guess_mode=True),)))
    assert np.abs(late - full).mean() > 0.5 and np.abs(guess - full).mean() > 0.5


def test_img2img_and_inpainting_take_control_too(home: Path, tiny_sd1: LoadedModel) -> None:
    painter = Painter(tiny_sd1, home=home)
    init = Image.new("RGB", (64, 64), (90, 160, 60))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 48, 48), fill=255)
    for extra in ({"init_image": init, "strength": 1.0}, {"init_image": init, "mask": mask, "strength": 1.0}):
        params = replace(BASE, steps=4, **extra)  # type: ignore[arg-type]
        steered = pixels(painter, replace(params, control_units=(unit("sd1-folder"),)))
        assert np.abs(steered - pixels(painter, params)).mean() > 0.5
    # the inpaint preprocessor reads the request's mask (or the control image's transparency)
    inpaint = ControlUnit("sd1-folder", image=init, preprocess=Preprocess.INPAINT)
    params = replace(BASE, init_image=init, mask=mask, control_units=(inpaint,))
    assert pixels(painter, params).shape == (64, 64, 3)


def test_a_controlnet_of_another_family_is_refused_before_loading(home: Path, sdxl: LoadedModel) -> None:
    painter = Painter(sdxl, home=home)
    for name in ("sd1-folder", "sd1-a1111"):
        with pytest.raises(ModelError, match=rf"ControlNet {name} is for .*but the model loaded is"):
            painter.generate(replace(BASE, control_units=(unit(name),)))
    engine = painter.engines[0]
    assert not getattr(engine, "controlnets")._loaded  # refused from the headers: nothing loaded  # noqa: B009


def test_names_are_looked_up_in_the_folder_and_listed_when_unknown(home: Path) -> None:
    assert [f.name for f in list_controlnets(home)][:3] == ["sd1-a1111", "sd1-folder", "sd1-other"]
    assert find_controlnet("sd1-a1111 [0123abcd]", home).path.suffix == ".safetensors"  # A1111: "NAME [hash]"
    with pytest.raises(ModelError, match=r"unknown ControlNet 'nope'.*holds: sd1-a1111, sd1-folder"):
        find_controlnet("nope", home)
    with pytest.raises(ModelError, match="unknown ControlNet"):
        find_controlnet("../controlnet/sd1-a1111", home)  # names only, never paths


def test_single_files_take_the_shipped_config_of_their_family(home: Path) -> None:
    sd15 = single_file_config({}, xl=False)
    assert sd15["cross_attention_dim"] == 768 and sd15["block_out_channels"] == [320, 640, 1280, 1280]
    assert single_file_config({}, xl=True)["addition_embed_type"] == "text_time"
    assert single_file_config({"cross_attention_dim": 1024}, xl=False)["use_linear_projection"] is True  # SD2
    header = architecture(find_controlnet("sdxl-a1111", home))
    assert header.xl and header.context == 64  # read from the header, no weights loaded
