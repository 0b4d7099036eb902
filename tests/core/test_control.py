"""ControlUnit: short errors, its JSON and infotext forms, and the model-free preprocessors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from keypaint.core.codec import params_from_json, params_to_json
from keypaint.core.control import ControlUnit, Preprocess, ResizeMode, infotext_value, units_from_infotext
from keypaint.core.control_maps import control_map, image_sha256
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams


def sketch(size: tuple[int, int] = (64, 64)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((8, 32, 56, 32), fill="black", width=3)
    return image


UNIT = ControlUnit("canny-net", image=sketch(), preprocess=Preprocess.CANNY, weight=0.8, start=0.1, end=0.9)


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"model": " "}, "control_model", "name a ControlNet"),
    ({"image": None}, "control_image", "give its control image"),
    ({"start": 0.6, "end": 0.5}, "control_start", "start 0.6 must be before end 0.5"),
    ({"weight": 3.0}, "control_weight", "within [0, 2]"),
    ({"end": float("nan")}, "control_end", "must be a number"),
    ({"resolution": 10}, "control_resolution", "[64, 4096]"),
])
def test_a_unit_that_cannot_run_is_refused_naming_the_field(change: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidParams, match=r"unit 0") as err:
        GenerationParams("apple", control_units=(replace(UNIT, **change),)).validate()
    assert err.value.field == field and words in err.value.reason


def test_units_share_one_control_mode() -> None:
    units = (UNIT, replace(UNIT, guess_mode=True))
    with pytest.raises(InvalidParams, match="one control mode"):
        GenerationParams("apple", control_units=units).validate()


def test_json_names_the_image_by_hash_and_reads_back_without_it() -> None:
    params = GenerationParams("apple", control_units=(UNIT,))
    data = params_to_json(params)
    [unit] = data["control_units"]
    assert unit["image"] == image_sha256(sketch()) and unit["preprocess"] == "canny"
    [back] = params_from_json(data).control_units
    assert back.image is None and back.image_sha256 == unit["image"]
    assert replace(back, image_sha256=None) == replace(UNIT, image=None)  # everything else as it was
    with pytest.raises(InvalidParams, match="control_image"):
        params_from_json(data).validate()  # without its picture it cannot run


def test_infotext_is_sd_webui_controlnets_and_reads_back() -> None:
    text = infotext_value(UNIT, "canny-net [0123abcd]")
    assert text == ("Module: canny, Model: canny-net [0123abcd], Weight: 0.8, Resize Mode: Crop and Resize, "
                    "Threshold A: 100, Threshold B: 200, Guidance Start: 0.1, Guidance End: 0.9, "
                    "Pixel Perfect: True, Control Mode: Balanced")
    [unit] = units_from_infotext({"ControlNet 0": text, "Steps": "20"})
    assert unit == replace(UNIT, image=None, threshold_a=100.0, threshold_b=200.0)
    assert Preprocess.parse("scribble_xdog") is Preprocess.SCRIBBLE
    with pytest.raises(InvalidParams, match="unknown preprocessor 'openpose'"):
        Preprocess.parse("openpose")


def test_canny_scribble_and_lineart_find_the_stroke() -> None:
    for module in (Preprocess.CANNY, Preprocess.SCRIBBLE, Preprocess.LINEART):
        lines = np.asarray(control_map(replace(UNIT, preprocess=module), 64, 64).image.convert("L"))
        assert lines[26:39, 16:48].max(axis=0).min() > 100, module  # along the stroke
        assert lines[:20].max() < 50 and lines[44:].max() < 50, module  # nothing far from it


def test_resize_modes_and_processor_resolution() -> None:
    wide = sketch((128, 64))
    for mode, expected in ((ResizeMode.JUST_RESIZE, (64, 64)), (ResizeMode.CROP_AND_RESIZE, (64, 64)),
                           (ResizeMode.RESIZE_AND_FILL, (64, 64))):
        made = control_map(replace(UNIT, image=wide, resize=mode, preprocess=Preprocess.NONE), 64, 64)
        assert made.image.size == expected
    filled = np.asarray(control_map(replace(UNIT, image=wide, resize=ResizeMode.RESIZE_AND_FILL,
                                            preprocess=Preprocess.NONE), 64, 64).image)
    assert filled[:10].max() == 0 and filled[30:34].max() == 255  # black bands above and below the picture
    coarse = control_map(replace(UNIT, resolution=256), 64, 64)  # preprocessed at 256 px, then resized
    assert coarse.image.size == (64, 64)


def test_inpaint_marks_the_hole_with_minus_one() -> None:
    image = sketch().convert("RGBA")
    image.putalpha(Image.new("L", (64, 64), 255))
    ImageDraw.Draw(image).rectangle((0, 0, 15, 15), fill=(0, 0, 0, 0))  # transparent: to be painted
    made = control_map(replace(UNIT, image=image, preprocess=Preprocess.INPAINT), 64, 64)
    tensor = made.conditioning
    assert tensor.shape == (1, 3, 64, 64)  # type: ignore[attr-defined]
    assert float(tensor[0, :, 4, 4].max()) == -1.0 and float(tensor[0, :, 50, 50].min()) == 1.0  # type: ignore
    with pytest.raises(InvalidParams, match="inpaint needs a mask"):
        control_map(replace(UNIT, preprocess=Preprocess.INPAINT), 64, 64)
