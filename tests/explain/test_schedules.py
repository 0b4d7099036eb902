"""The forward chain's math: closed form vs the one-step chain, the known schedules, bad steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.errors import InvalidParams
from keypaint.explain.schedules import (
    SCHEDULES,
    alpha_bar,
    check_timesteps,
    closed_form,
    iterate_chain,
    plot_schedules,
    schedule_curves,
    training_scheduler,
)


def scheduler(name: str):
    return training_scheduler({"num_train_timesteps": 1000, **SCHEDULES[name]})


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_iterated_chain_has_the_closed_forms_mean_and_variance(name: str) -> None:
    """Ho et al. 2020 eq. 4: running x_s = sqrt(alpha_s) x_{s-1} + sqrt(1-alpha_s) eps_s for s = 1..t gives
    x_t ~ N(sqrt(abar_t) x_0, (1 - abar_t) I). Checked on 8,000 chains per starting value."""
    sched = scheduler(name)
    n = 8_000  # x 4 values: small enough for one thread, many enough for a 5-sigma check
    x0 = torch.tensor([-1.5, -0.3, 0.4, 1.2], dtype=torch.float64).repeat(n, 1)
    generator = torch.Generator("cpu").manual_seed(0)
    x_t, s = x0, 0
    for t in (1, 40, 300, 1000):
        x_t, s = iterate_chain(x_t, sched, t, generator, start=s), t  # one chain, looked at along the way
        abar = alpha_bar(sched, t)
        mean, var = x_t.mean(0), x_t.var(0)
        expected_mean, expected_var = abar**0.5 * x0[0], 1 - abar
        # 5 standard errors: mean's is sqrt(var / n), the sample variance's is var * sqrt(2 / (n - 1))
        assert torch.all((mean - expected_mean).abs() < 5 * (expected_var / n) ** 0.5), (t, mean)
        assert torch.all((var - expected_var).abs() < 5 * expected_var * (2 / (n - 1)) ** 0.5), (t, var)


def test_the_mean_check_would_catch_a_wrong_chain() -> None:
    """Guard against a check that cannot fail: a chain without the sqrt on alpha drifts measurably."""
    sched = scheduler("DDPM linear")
    x0 = torch.ones(8_000, 1, dtype=torch.float64)
    t = 300
    x = x0.clone()
    generator = torch.Generator("cpu").manual_seed(1)
    for s in range(1, t + 1):
        alpha = float(sched.alphas[s - 1])
        x = alpha * x + (1 - alpha) ** 0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    abar = alpha_bar(sched, t)
    assert abs(float(x.mean()) - abar**0.5) > 5 * ((1 - abar) / 8_000) ** 0.5


def test_closed_form_is_diffusers_add_noise_one_index_earlier() -> None:
    sched = scheduler("SD scaled_linear")
    x0, eps = torch.randn(2, 4, 8, 8).unbind(0)
    for t in (1, 10, 500, 1000):
        expected = sched.add_noise(x0, eps, torch.tensor([t - 1]))
        torch.testing.assert_close(closed_form(x0, eps, alpha_bar(sched, t)), expected)
    assert torch.equal(closed_form(x0, eps, alpha_bar(sched, 0)), x0)


def test_schedules_have_the_published_shapes() -> None:
    linear = schedule_curves(scheduler("DDPM linear"))
    assert linear["beta"][0] == pytest.approx(1e-4) and linear["beta"][-1] == pytest.approx(0.02)
    sd = schedule_curves(scheduler("SD scaled_linear"))
    assert sd["beta"][0] == pytest.approx(0.00085) and sd["beta"][-1] == pytest.approx(0.012)
    assert np.allclose(np.sqrt(sd["beta"]), np.linspace(0.00085**0.5, 0.012**0.5, 1000))
    for name in SCHEDULES:
        curves = schedule_curves(scheduler(name))
        assert np.all(np.diff(curves["alpha_bar"]) < 0) and np.all(np.diff(curves["snr"]) < 0)
    # SD's schedule leaves more signal at T than DDPM's linear one (SNR_T ~ 0.0047 vs ~ 4e-5)
    assert sd["snr"][-1] > 50 * linear["snr"][-1]


@pytest.mark.parametrize("steps", [[-1], [0, 1001], []])
def test_steps_outside_the_schedule_are_refused(steps: list[int]) -> None:
    with pytest.raises(InvalidParams, match="steps"):
        check_timesteps(steps, scheduler("cosine"))


def test_plot_is_written(tmp_path: Path) -> None:
    extra = {"mine": {"beta_schedule": "linear", "beta_start": 0.001}}
    path = plot_schedules(tmp_path / "schedules.png", extra)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500
