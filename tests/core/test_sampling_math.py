"""The shared diffusion maths: guidance, x_0/eps/v conversions, the forward closed form, x_T from a seed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from keypaint.core.sampling_math import (
    closed_form,
    cpu_generators,
    eps_from_v,
    eps_from_x0,
    guidance,
    guide_batch,
    split_prediction,
    start_noise,
    start_noise_numpy,
    x0_from_eps,
    x0_from_v,
)

SHAPE = (4, 8, 8)


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = start_noise(cpu_generators([seed, seed + 1]), SHAPE)
    return a, b


def test_guidance_scale_one_is_the_conditional_and_zero_the_unconditional() -> None:
    uncond, cond = _pair(0)
    torch.testing.assert_close(guidance(uncond, cond, 1.0), cond)
    assert torch.equal(guidance(uncond, cond, 0.0), uncond)
    # w > 1 extrapolates past the conditional along (cond - uncond)
    torch.testing.assert_close(guidance(uncond, cond, 7.5) - cond, 6.5 * (cond - uncond))


def test_guide_batch_reads_uncond_rows_then_cond_rows() -> None:
    uncond, cond = _pair(1)
    batch = torch.stack([uncond, uncond * 2, cond, cond * 2])  # two pictures: [u1, u2, c1, c2]
    got = guide_batch(batch, 3.0)
    assert got.shape == (2, *SHAPE)
    assert torch.equal(got[0], guidance(uncond, cond, 3.0))
    assert torch.equal(got[1], guidance(uncond * 2, cond * 2, 3.0))


@pytest.mark.parametrize("abar", [0.999, 0.5, 0.01])
def test_x0_eps_round_trip(abar: float) -> None:
    x0, eps = _pair(2)
    x_t = closed_form(x0, eps, abar)
    torch.testing.assert_close(x0_from_eps(x_t, eps, abar), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(eps_from_x0(x_t, x0, abar), eps, atol=1e-4, rtol=1e-4)
    # v = sqrt(abar) eps - sqrt(1 - abar) x_0 (Salimans & Ho 2022) maps back to both
    v = abar**0.5 * eps - (1 - abar) ** 0.5 * x0
    torch.testing.assert_close(x0_from_v(x_t, v, abar), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(eps_from_v(x_t, v, abar), eps, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_split_prediction_recovers_x0_and_eps(prediction_type: str) -> None:
    x0, eps = _pair(3)
    abar = 0.3
    x_t = closed_form(x0, eps, abar)
    output = {"epsilon": eps, "v_prediction": abar**0.5 * eps - (1 - abar) ** 0.5 * x0, "sample": x0}
    got_x0, got_eps = split_prediction(output[prediction_type], x_t, abar, prediction_type)
    torch.testing.assert_close(got_x0, x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_eps, eps, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown prediction type"):
        split_prediction(eps, x_t, abar, "flow")


def test_forward_closed_form_has_the_ddpm_mean_and_variance() -> None:
    """q(x_t | x_0) = N(sqrt(abar) x_0, (1 - abar) I), checked on 2^16 seeded draws."""
    abar, x0 = 0.36, torch.full((1 << 16,), 2.0)
    eps = start_noise(cpu_generators([7]), x0.shape)[0]
    x_t = closed_form(x0, eps, abar)
    assert abs(float(x_t.mean()) - 0.6 * 2.0) < 0.01
    assert abs(float(x_t.var()) - 0.64) < 0.01
    assert torch.equal(closed_form(x0, eps, 1.0), x0)


def test_start_noise_is_the_seeded_cpu_draw() -> None:
    generators = cpu_generators([5, 6])
    got = start_noise(generators, SHAPE)
    assert got.dtype == torch.float32 and got.shape == (2, *SHAPE)
    assert torch.equal(got[1], torch.randn(SHAPE, generator=torch.Generator().manual_seed(6)))
    # the generators go on (ancestral samplers draw their step noise from them next)
    same = torch.Generator().manual_seed(5)
    torch.randn(SHAPE, generator=same)
    assert torch.equal(torch.randn(3, generator=generators[0]), torch.randn(3, generator=same))


def test_numpy_and_torch_give_the_same_numbers() -> None:
    torch_noise = start_noise(cpu_generators([11, 12]), SHAPE)
    numpy_noise = start_noise_numpy([11, 12], SHAPE)
    assert numpy_noise.dtype == np.float32
    np.testing.assert_allclose(numpy_noise, torch_noise.numpy(), atol=1e-5)
    u, c = torch_noise.numpy(), torch_noise.numpy()[::-1].copy()
    abar = 0.42
    pairs = [
        (guidance(u, c, np.float32(7.5)), guidance(torch.from_numpy(u), torch.from_numpy(c), 7.5)),
        (guide_batch(np.concatenate([u, c]), np.float32(3.0)),
         guide_batch(torch.cat([torch.from_numpy(u), torch.from_numpy(c)]), 3.0)),
        (closed_form(u, c, abar), closed_form(torch.from_numpy(u), torch.from_numpy(c), abar)),
    ]
    for kind in ("epsilon", "v_prediction", "sample"):
        from_torch = split_prediction(torch.from_numpy(u), torch.from_numpy(c), abar, kind)
        pairs += list(zip(split_prediction(u, c, abar, kind), from_torch, strict=True))
    for got_numpy, got_torch in pairs:
        assert isinstance(got_numpy, np.ndarray) and got_numpy.dtype == np.float32
        np.testing.assert_allclose(got_numpy, got_torch.numpy(), rtol=1e-6, atol=1e-6)


def test_importing_it_does_not_import_torch() -> None:
    """The frozen CPU path imports this module and must never import PyTorch."""
    code = "import sys, keypaint.core.sampling_math; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
