from __future__ import annotations

import pytest
from diffusers import DPMSolverMultistepScheduler, DPMSolverSDEScheduler, EulerAncestralDiscreteScheduler

from keypaint.core.samplers import SPECS, Sampler, from_infotext, make_scheduler
from keypaint.errors import InvalidParams
from keypaint.models.tiny import SD_SCHEDULER

EXPECTED = [
    "DDPM",
    "DDIM",
    "Euler",
    "Euler a",
    "Heun",
    "LMS",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "UniPC",
    "LCM",
]


def test_every_name_users_know_is_there() -> None:
    assert [s.value for s in Sampler] == EXPECTED
    assert set(SPECS) == set(Sampler)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("euler a", Sampler.EULER_A),
        ("EULER_A", Sampler.EULER_A),
        ("k_euler_ancestral", Sampler.EULER_A),
        ("dpm++ 2m karras", Sampler.DPMPP_2M_KARRAS),
        ("DPMPP_2M_KARRAS", Sampler.DPMPP_2M_KARRAS),
        ("unipc", Sampler.UNIPC),
    ],
)
def test_parse_is_forgiving_about_case_and_spelling(text: str, expected: Sampler) -> None:
    assert Sampler.parse(text) is expected


def test_unknown_sampler_lists_the_known_ones() -> None:
    with pytest.raises(InvalidParams, match=r"unknown sampler 'Eulr'.*Euler a"):
        Sampler.parse("Eulr")


def test_infotext_schedule_type_selects_karras_variant() -> None:
    assert from_infotext("DPM++ 2M", "Karras") is Sampler.DPMPP_2M_KARRAS
    assert from_infotext("DPM++ 2M", "Automatic") is Sampler.DPMPP_2M
    assert from_infotext("DPM++ SDE", "Karras") is Sampler.DPMPP_SDE_KARRAS
    assert from_infotext("Euler a", None) is Sampler.EULER_A


def test_scheduler_keeps_the_models_training_schedule() -> None:
    config = dict(SD_SCHEDULER, prediction_type="v_prediction")
    scheduler = make_scheduler(Sampler.DPMPP_2M_KARRAS, config, [1])
    assert isinstance(scheduler, DPMSolverMultistepScheduler)
    assert scheduler.config.use_karras_sigmas is True
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert isinstance(make_scheduler(Sampler.EULER_A, config, [1]), EulerAncestralDiscreteScheduler)


def test_sde_sampler_noise_is_seeded_per_picture() -> None:
    scheduler = make_scheduler(Sampler.DPMPP_SDE_KARRAS, dict(SD_SCHEDULER), [7, 8])
    assert isinstance(scheduler, DPMSolverSDEScheduler)
    assert scheduler.noise_sampler_seed == [7, 8]


def test_latents_are_never_clipped_even_when_the_model_config_omits_it() -> None:
    dpm_config = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    assert make_scheduler(Sampler.DDPM, dpm_config, [1]).config.clip_sample is False
    ddim = make_scheduler(Sampler.DDIM, dpm_config, [1])
    assert ddim.config.clip_sample is False
    assert ddim.config.set_alpha_to_one is False
