"""The reverse-chain recorder runs the Painter's numbers: its last step is the Painter's picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter, StepEvent
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler, make_scheduler
from keypaint.errors import InvalidParams
from keypaint.explain.reverse import (
    base_scheduler_config,
    pick_columns,
    record_reverse,
    save_reverse,
    split_prediction,
)
from keypaint.explain.schedules import closed_form
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def painted(painter: Painter, params: GenerationParams) -> tuple[Image.Image, torch.Tensor]:
    """The Painter's picture and its last x_t as reported to step callbacks."""
    events: list[StepEvent] = []
    [result] = painter.generate(params, on_step=events.append)
    return result.image, events[-1].latents[0].float().cpu()


@pytest.mark.parametrize(
    ("sampler", "cfg"),
    [(Sampler.DDPM, 7.0), (Sampler.DDIM, 7.0), (Sampler.DPMPP_2M_KARRAS, 7.0), (Sampler.EULER_A, 1.0),
     (Sampler.HEUN, 3.0)],
)
def test_recorded_last_step_is_the_painters_picture(painter: Painter, sampler: Sampler, cfg: float) -> None:
    params = GenerationParams(prompt="red apple, fruit", negative_prompt="blurry", steps=3, seed=11,
                              sampler=sampler, guidance_scale=cfg)
    image, last = painted(painter, params)
    recording = record_reverse(painter, params)
    calls = 5 if sampler is Sampler.HEUN else 3  # Heun evaluates the U-Net twice a step but the last
    assert recording.x_t.shape == (calls + 1, 4, 8, 8)
    assert recording.pred_x0.shape == recording.pred_eps.shape == (calls, 4, 8, 8)
    torch.testing.assert_close(recording.x_t[-1], last, atol=1e-5, rtol=1e-5)
    assert np.abs(pixels(recording.image) - pixels(image)).max() <= 1
    other = record_reverse(painter, GenerationParams(prompt="red apple, fruit", steps=3, seed=12,
                                                     sampler=sampler))
    assert np.abs(pixels(other.image) - pixels(image)).mean() > 1  # the comparison above can fail


def test_recorder_matches_the_painter_on_sdxl() -> None:
    painter = Painter(tiny_model(ModelKind.SDXL))
    params = GenerationParams(prompt="red apple", steps=2, seed=4, sampler=Sampler.DDIM)
    image, last = painted(painter, params)
    recording = record_reverse(painter, params)
    torch.testing.assert_close(recording.x_t[-1], last, atol=1e-5, rtol=1e-5)
    assert np.abs(pixels(recording.image) - pixels(image)).max() <= 1


@pytest.mark.parametrize("sampler", [Sampler.DDIM, Sampler.EULER])
def test_x0_from_the_noise_equals_the_schedulers_own(painter: Painter, sampler: Sampler) -> None:
    """split_prediction on the recorded (x_t, eps) gives the scheduler's pred_original_sample, in VP (DDIM)
    and in sigma (Euler) parametrisation: what DPM++ and UniPC, which do not return x_0, rely on."""
    params = GenerationParams(prompt="apple", steps=3, seed=2, sampler=sampler)
    recording = record_reverse(painter, params)
    scheduler = make_scheduler(sampler, base_scheduler_config(painter), [2])
    scheduler.set_timesteps(3)
    for i, t in enumerate(scheduler.timesteps):
        sigmas = getattr(scheduler, "sigmas", None)
        abar = (1 / (1 + float(sigmas[i]) ** 2) if sigmas is not None
                else float(scheduler.alphas_cumprod[int(t)]))
        x0, eps = split_prediction(recording.pred_eps[i], recording.x_t[i], abar, "epsilon")
        torch.testing.assert_close(x0, recording.pred_x0[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(eps, recording.pred_eps[i])


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_split_prediction_inverts_each_parametrisation(prediction_type: str) -> None:
    x0, eps = torch.randn(2, 4, 8, 8, dtype=torch.float64).unbind(0)
    abar = 0.3
    x_t = closed_form(x0, eps, abar)
    output = {"epsilon": eps, "sample": x0,
              "v_prediction": abar**0.5 * eps - (1 - abar) ** 0.5 * x0}[prediction_type]  # Salimans & Ho 2022
    got_x0, got_eps = split_prediction(output, x_t, abar, prediction_type)
    torch.testing.assert_close(got_x0, x0)
    torch.testing.assert_close(got_eps, eps)


def test_grid_animation_and_tensors_are_written(painter: Painter, tmp_path: Path) -> None:
    recording = record_reverse(painter, GenerationParams(prompt="apple", steps=4, seed=1,
                                                         sampler=Sampler.DPMPP_2M))
    written = save_reverse(recording, painter.model, tmp_path / "r.png", tmp_path / "r.gif",
                           tmp_path / "r.npz", columns=3)
    assert [p.name for p in written] == ["r.png", "r.gif", "r.npz"]
    with Image.open(tmp_path / "r.gif") as gif:
        assert gif.n_frames == 5  # one frame a U-Net call, then the final picture
    data = np.load(tmp_path / "r.npz")
    assert data["x_t"].shape == (5, 4, 8, 8) and data["pred_eps"].shape == (4, 4, 8, 8)
    assert data["x_t_decoded"].shape == (5, 64, 64, 3) and data["image"].shape == (1, 64, 64, 3)
    assert np.array_equal(data["x_t_decoded"][-1], data["image"][0])
    save_reverse(recording, painter.model, None, tmp_path / "r.webp")
    with Image.open(tmp_path / "r.webp") as webp:
        assert webp.format == "WEBP" and webp.n_frames == 5


def test_columns_spread_over_the_calls() -> None:
    assert pick_columns(3, 8) == [0, 1, 2]
    assert pick_columns(20, 5) == [0, 5, 10, 14, 19]


def test_only_single_txt2img_runs(painter: Painter, picture: Image.Image) -> None:
    with pytest.raises(InvalidParams, match="init_image"):
        record_reverse(painter, GenerationParams(prompt="apple", steps=2, seed=1, init_image=picture))
    with pytest.raises(InvalidParams, match="batch_size"):
        record_reverse(painter, GenerationParams(prompt="apple", steps=2, seed=1, batch_size=2))
    with pytest.raises(InvalidParams, match="steps"):
        record_reverse(painter, GenerationParams(prompt="apple", steps=0, seed=1))
