from __future__ import annotations

import pytest
from PIL import Image

from keypaint.core.params import GenerationParams, Limits
from keypaint.errors import InvalidParams


def test_from_keywords_joins_keywords_like_people_type_them() -> None:
    params = GenerationParams.from_keywords([" red apple", "fruit ", ""], negative=["green"], seed=3)
    assert params.prompt == "red apple, fruit"
    assert params.negative_prompt == "green"
    assert params.seed == 3


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": 1e308}, "guidance_scale"),
        ({"guidance_scale": 30.5}, "guidance_scale"),
        ({"width": 100}, "width"),
        ({"height": 36}, "height"),
        ({"width": 4096, "height": 4096}, "size"),
        ({"strength": 1.5}, "strength"),
        ({"strength": -0.1}, "strength"),
        ({"seed": -2}, "seed"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_count": 0}, "batch_count"),
        ({"sampler": "Euler"}, "sampler"),
        ({"expand_keywords": "no"}, "expand_keywords"),
    ],
)
def test_bad_values_name_their_field(changes: dict, field: str) -> None:
    with pytest.raises(InvalidParams) as err:
        GenerationParams(prompt="apple", **changes).validate()
    assert err.value.field == field
    assert field in str(err.value)


def test_pixel_budget_is_configurable() -> None:
    params = GenerationParams(prompt="apple", width=512, height=512)
    params.validate(Limits(max_pixels=512 * 512))
    with pytest.raises(InvalidParams, match="pixel budget"):
        params.validate(Limits(max_pixels=256 * 256))


def test_mask_must_match_init_image() -> None:
    init = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidParams, match="does not match"):
        GenerationParams(prompt="a", init_image=init, mask=Image.new("L", (32, 64))).validate()
    with pytest.raises(InvalidParams, match="needs an init image"):
        GenerationParams(prompt="a", mask=Image.new("L", (64, 64))).validate()
    assert GenerationParams(prompt="a", init_image=init, mask=Image.new("L", (64, 64))).mode == "inpaint"
    assert GenerationParams(prompt="a", init_image=init).mode == "img2img"


def test_random_seed_is_resolved_and_batch_items_use_consecutive_seeds() -> None:
    params = GenerationParams(prompt="a", batch_size=3, batch_count=2).with_seed()
    assert params.seed >= 0
    assert params.seeds() == [params.seed + i for i in range(6)]
    assert GenerationParams(prompt="a", seed=5).with_seed().seed == 5
    with pytest.raises(InvalidParams):
        GenerationParams(prompt="a").seeds()
