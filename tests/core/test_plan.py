"""`Painter.plan`: a request is refused before any weights load, for what it asks, not for the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypaint.builtin import MODEL
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.core.speed.options import SpeedOptions
from keypaint.errors import KeypaintError
from keypaint.models.loaded import LoadedModel
from keypaint.provenance.policy import ContentPolicy


class CountingLoader:
    """A Painter's loader that only counts calls: any call means a plan loaded weights."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> LoadedModel:
        self.calls += 1
        raise AssertionError("plan must not load the model")


@pytest.mark.parametrize(
    ("params", "speed", "field"),
    [
        (GenerationParams(prompt="a zqblocked cat"), SpeedOptions(), "zqblocked"),  # the content policy
        (GenerationParams(prompt="apple", steps=0), SpeedOptions(), "steps"),
        (GenerationParams(prompt="apple", width=100), SpeedOptions(), "width"),
        (GenerationParams(prompt="apple", loras=(LoraRef("zqmissing"),)), SpeedOptions(), "zqmissing"),
        (GenerationParams(prompt="apple <lora:zqmissing:0.5>"), SpeedOptions(), "zqmissing"),
        (GenerationParams(prompt="apple", embeddings=("zqnothere",)), SpeedOptions(), "zqnothere"),
        # the shipped LCM-LoRA exists, but LoRAs do not run on the compiled fast path
        (GenerationParams(prompt="apple", loras=(LoraRef("keypaint-lcm"),)),
         SpeedOptions(fast=True, backend="compile"), "lora"),
    ],
)
def test_plan_refuses_before_any_model_loads(
    tmp_path: Path, params: GenerationParams, speed: SpeedOptions, field: str
) -> None:
    loader = CountingLoader()
    painter = Painter(loader=loader, policy=ContentPolicy(blocked=("zqblocked",)), home=tmp_path, speed=speed)
    with pytest.raises(KeypaintError) as err:
        painter.plan(params)
    assert field in str(err.value)
    with pytest.raises(KeypaintError):
        painter.resolve(params)  # resolve plans first too
    assert loader.calls == 0 and not painter.loaded


def test_a_good_plan_names_its_files_and_loads_nothing(tmp_path: Path) -> None:
    loader = CountingLoader()
    painter = Painter(loader=loader, home=tmp_path, speed=SpeedOptions(fast=True, backend="onnxruntime"),
                      builtin=MODEL)  # its shipped LoRAs are found by name
    plan = painter.plan(GenerationParams(prompt="apple", loras=(LoraRef("keypaint-lcm", 0.5),)))
    assert [(file.path.stem, weight) for file, weight in plan.loras] == [("keypaint-lcm", 0.5)]
    assert loader.calls == 0 and not painter.loaded


def test_speed_options_are_checked_once_when_the_painter_is_made(tmp_path: Path) -> None:
    loader = CountingLoader()
    with pytest.raises(KeypaintError, match="deep_cache"):
        Painter(loader=loader, speed=SpeedOptions(fast=True, deep_cache=3))
    assert loader.calls == 0


def test_lazy_load_plans_before_the_built_in_model_loads(tmp_path: Path) -> None:
    painter = Painter.load(device="cpu", home=tmp_path, lazy=True, builtin=MODEL)
    with pytest.raises(KeypaintError, match="steps"):
        painter.plan(GenerationParams(prompt="apple", steps=0))
    painter.plan(GenerationParams(prompt="apple"))
    assert not painter.loaded
