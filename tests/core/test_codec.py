"""`core.codec`: GenerationParams as JSON and back; `core.presets`; keywords joined in one place."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest
from PIL import Image

from keypaint.core.codec import JSON_FIELDS, params_from_json, params_to_json
from keypaint.core.control import ControlUnit, Preprocess
from keypaint.core.flow import FlowOptions
from keypaint.core.hires import HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.core.params import GenerationParams, LoraRef, join_keywords
from keypaint.core.presets import LCM_LORA, apply_preset
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

# every field away from its default, so a field the codec dropped would show
FULL = GenerationParams(
    prompt="red apple, (fruit:1.3)", negative_prompt="blurry", steps=12, guidance_scale=5.5,
    sampler=Sampler.EULER_A, seed=42, width=256, height=320, batch_size=2, batch_count=3, strength=0.4,
    best_of=2, loras=(LoraRef("zqstyle", 0.8), LoraRef("keypaint-lcm", 1.0)), embeddings=("zqword",),
    expand_keywords=False,
    control_units=(ControlUnit("lines", preprocess=Preprocess.CANNY, weight=0.5, image_sha256="ab" * 32),),
    hires=HiresOptions(scale=1.5, upscaler="Lanczos", steps=5, strength=0.5),
    outpaint=Outpaint(left=64, up=8),
    flow=FlowOptions(shift=2.0, distilled_guidance=4.0),
)


def test_every_field_but_the_pictures_round_trips_through_json() -> None:
    defaults = GenerationParams(prompt="x")
    for f in fields(GenerationParams):
        if f.name not in ("init_image", "mask"):
            assert getattr(FULL, f.name) != getattr(defaults, f.name), f.name
    data = params_to_json(FULL)
    pictures = {"init_image", "mask"}
    assert set(data) == set(JSON_FIELDS) == {f.name for f in fields(GenerationParams)} - pictures
    assert params_from_json(json.loads(json.dumps(data))) == FULL
    assert params_from_json({"prompt": "x"}) == defaults  # what is left out takes the default


def test_pictures_and_overrides_come_beside_the_json() -> None:
    init = Image.new("RGB", (64, 64))
    again = params_from_json(params_to_json(FULL), init_image=init, steps=3, outpaint=None)
    assert again.init_image is init and again.steps == 3 and again.mode == "img2img"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stepz": 3}, "stepz"),  # a typo is not silently ignored
        ({"init_image": "aGk="}, "init_image"),  # pictures never travel inside the JSON
        ({"steps": "20"}, "steps"),
        ({"steps": True}, "steps"),  # a bool is no number
        ({"guidance_scale": "7"}, "guidance_scale"),
        ({"sampler": 3}, "sampler"),
        ({"sampler": "Nope"}, "sampler"),
        ({"width": 64.0}, "width"),
        ({"expand_keywords": "yes"}, "expand_keywords"),
        ({"loras": [["zqstyle"]]}, "loras"),
        ({"loras": "zqstyle"}, "loras"),
        ({"embeddings": [3]}, "embedding"),
        ({"prompt": None}, "prompt"),
    ],
)
def test_unknown_or_ill_typed_fields_are_refused_by_name(change: dict[str, Any], field: str) -> None:
    data = {**params_to_json(FULL), **change}
    if change == {"init_image": "aGk="}:
        data = {"prompt": "x", "init_image": "aGk="}
    with pytest.raises(InvalidParams) as err:
        params_from_json(data)
    assert err.value.field == field


def test_unknown_override_and_missing_prompt_are_refused() -> None:
    with pytest.raises(InvalidParams) as err:
        params_from_json({"prompt": "x"}, stepz=3)
    assert err.value.field == "stepz"
    with pytest.raises(InvalidParams) as err:
        params_from_json({"steps": 3})
    assert err.value.field == "prompt"


def test_only_picks_fields_in_order() -> None:
    assert list(params_to_json(FULL, only=("seed", "prompt"))) == ["seed", "prompt"]


def test_lcm_preset_fills_what_is_left_open() -> None:
    values = apply_preset("lcm", {"prompt": "apple", "loras": (LoraRef("zqstyle", 0.5),)})
    params = GenerationParams(**values)
    assert (params.sampler, params.steps, params.guidance_scale) == (Sampler.LCM, 4, 1.0)
    assert params.loras == (LoraRef("zqstyle", 0.5), LoraRef(LCM_LORA, 1.0))
    given = GenerationParams(**apply_preset("lcm", {"prompt": "apple", "steps": 2, "guidance_scale": 1.5}))
    assert (given.steps, given.guidance_scale) == (2, 1.5)  # a preset never overrides what is given


@pytest.mark.parametrize(("name", "given"), [("lcm", {"sampler": Sampler.EULER}), ("turbo", {})])
def test_presets_refuse_what_they_cannot_run(name: str, given: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams) as err:
        apply_preset(name, {"prompt": "apple", **given})
    assert err.value.field == "preset"


def test_keywords_are_joined_in_one_place() -> None:
    assert join_keywords([" red apple", "fruit ", "", "  "]) == "red apple, fruit"
    params = GenerationParams.from_keywords(["red apple", " fruit"], ["blurry ", ""], steps=3)
    assert (params.prompt, params.negative_prompt, params.steps) == ("red apple, fruit", "blurry", 3)
