"""`JobSpec` derives from `GenerationParams` (core.codec's JSON); the job API reaches the presets."""

from __future__ import annotations

import pytest

from keypaint.core.hires import HiresOptions
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.core.presets import LCM_LORA
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams
from keypaint.server.api import JobRequest
from keypaint.server.spec import JobSpec


def test_job_spec_json_keeps_its_keys_and_reads_back() -> None:
    params = GenerationParams(prompt="apple", steps=3, sampler=Sampler.EULER, loras=(LoraRef("zq", 0.5),),
                              embeddings=("zqword",), width=64, height=64, hires=HiresOptions(scale=1.5))
    spec = JobSpec(params, model="tiny", save=False, fit_native=True, request={"keywords": ["apple"]})
    data = spec.to_json()
    assert list(data) == ["prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width",
                          "height", "batch_size", "batch_count", "strength", "model", "loras", "embeddings",
                          "expand_keywords", "control_units", "hires", "outpaint", "flow", "save",
                          "fit_native", "request", "control_images"]
    assert data["sampler"] == "Euler" and data["loras"] == [["zq", 0.5]]
    assert JobSpec.from_json(data) == spec


def test_job_request_without_preset_is_the_plain_request() -> None:
    spec = JobRequest(keywords=[" red apple", "fruit "], negative_keywords=["blurry"]).job_spec()
    assert spec.params == GenerationParams(prompt="red apple, fruit", negative_prompt="blurry")


def test_job_request_asks_for_the_lcm_preset() -> None:
    spec = JobRequest(keywords=["apple"], preset="lcm").job_spec()
    assert (spec.params.sampler, spec.params.steps, spec.params.guidance_scale) == (Sampler.LCM, 4, 1.0)
    assert spec.params.loras == (LoraRef(LCM_LORA, 1.0),)
    given = JobRequest(keywords=["apple"], preset="lcm", steps=2, sampler="LCM").job_spec()
    assert given.params.steps == 2  # what the request gives wins
    for body in ({"preset": "lcm", "sampler": "Euler"}, {"preset": "turbo"}):
        with pytest.raises(InvalidParams) as err:
            JobRequest(keywords=["apple"], **body).job_spec()  # type: ignore[arg-type]
        assert err.value.field == "preset"
