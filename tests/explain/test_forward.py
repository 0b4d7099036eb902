"""The forward chain on a real picture through a tiny VAE: shapes, the clean and the fully noised ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.errors import InvalidParams
from keypaint.explain.figures import encode_image
from keypaint.explain.forward import forward_chain, save_forward
from keypaint.explain.reverse import base_scheduler_config


def test_strip_of_x_t_from_the_closed_form(painter: Painter, picture: Image.Image, tmp_path: Path) -> None:
    steps = [0, 10, 500, 1000]
    config = base_scheduler_config(painter)
    chain = forward_chain(painter.model, picture, steps, seed=3, scheduler_config=config)
    assert chain.latents.shape == (4, 4, 8, 8)
    assert [image.size for image in chain.decoded] == [(64, 64)] * 4
    x0 = encode_image(painter.model, picture, 64, 64)
    assert torch.equal(chain.latents[0], x0[0])  # t = 0 is the clean latent
    eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(3))
    # near T almost nothing of x_0 is left: x_T is (almost exactly) the noise, sqrt(abar_T) ~ 0.068 for SD
    assert chain.alpha_bars[-1] < 0.005
    torch.testing.assert_close(chain.latents[-1], eps[0], atol=0.3, rtol=0)
    assert chain.alpha_bars == sorted(chain.alpha_bars, reverse=True)

    written = save_forward(chain, tmp_path / "forward.png", tmp_path / "forward.npz")
    assert [p.name for p in written] == ["forward.png", "forward.npz"]
    data = np.load(written[1])
    assert data["latents"].shape == (4, 4, 8, 8) and data["decoded"].shape == (4, 64, 64, 3)
    assert list(data["timesteps"]) == steps
    with Image.open(written[0]) as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("steps", [[1001], [-5, 10]])
def test_steps_outside_the_schedule(painter: Painter, picture: Image.Image, steps: list[int]) -> None:
    with pytest.raises(InvalidParams, match=r"steps: .* outside the schedule's 0\.\.1000"):
        forward_chain(painter.model, picture, steps, seed=1, scheduler_config=base_scheduler_config(painter))
