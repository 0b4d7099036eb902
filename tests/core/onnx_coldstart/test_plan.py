"""Sampler plans read off diffusers' schedulers reproduce them; samplers with fresh noise get none."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from keypaint.builtin import WEIGHTS_DIR
from keypaint.core.onnx_coldstart.plan import SamplerPlan
from keypaint.core.onnx_coldstart.record import probe_plan
from keypaint.core.samplers import Sampler, make_scheduler

CONFIG = json.loads((WEIGHTS_DIR / "scheduler" / "scheduler_config.json").read_text())
LINEAR = [Sampler.DDIM, Sampler.EULER, Sampler.HEUN, Sampler.LMS, Sampler.DPMPP_2M, Sampler.DPMPP_2M_KARRAS,
          Sampler.UNIPC]


def run_scheduler(sampler: Sampler, steps: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The pipeline's loop with random model outputs: (x_T then each eps, latent after each call)."""
    generator = torch.Generator().manual_seed(seed)
    scheduler = make_scheduler(sampler, CONFIG, [0])
    scheduler.set_timesteps(steps)
    x_t = torch.randn((2, 4, 4, 4), generator=generator)
    x, vectors, states = x_t * scheduler.init_noise_sigma, [x_t.numpy()], []
    for t in scheduler.timesteps:
        scheduler.scale_model_input(x, t)
        eps = torch.randn((2, 4, 4, 4), generator=generator)
        vectors.append(eps.numpy())
        x = scheduler.step(eps, t, x, return_dict=False)[0]
        states.append(x.numpy())
    return vectors, states


@pytest.mark.parametrize("sampler", LINEAR)
def test_plan_reproduces_the_scheduler(sampler: Sampler) -> None:
    plan = probe_plan(sampler, 6, CONFIG)
    assert plan is not None and plan.steps == 6
    vectors, states = run_scheduler(sampler, 6, seed=99)
    assert plan.calls == len(states)  # Heun calls the U-Net more often than it has steps
    for k, state in enumerate(states):
        np.testing.assert_allclose(plan.combine(plan.states[k], vectors[: k + 2]), state, atol=1e-4)


@pytest.mark.parametrize("sampler", [Sampler.EULER_A, Sampler.DDPM, Sampler.DPMPP_SDE_KARRAS])
def test_samplers_with_fresh_noise_have_no_plan(sampler: Sampler) -> None:
    assert probe_plan(sampler, 4, CONFIG) is None


def test_json_round_trip_and_bad_plans() -> None:
    plan = probe_plan(Sampler.DPMPP_2M_KARRAS, 3, CONFIG)
    assert plan is not None
    assert SamplerPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    data = plan.to_json()
    with pytest.raises(ValueError, match="not a"):
        SamplerPlan.from_json({**data, "format": "other"})
    with pytest.raises(ValueError, match="rows"):
        SamplerPlan.from_json({**data, "states": data["states"][:-1]})
