"""LCM-LoRA distillation at toy size on the CPU, through the `keypaint train lcm` CLI; the LoRA it writes
must load with plain diffusers and change a 4-step LCMScheduler picture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from keypaint.builtin import unet_sha256
from keypaint.builtin.architecture import TRAIN_SCHEDULE, build_unet, build_vae, size_preset
from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.cli.train_cmd import train_app
from keypaint.training.lcm import DdimSolver

runner = CliRunner()


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    """A tiny random-weight VAE and U-Net saved as diffusers folders: ROOT/vae, ROOT/unet."""
    vae_size, unet_size = size_preset("tiny")
    torch.manual_seed(0)
    vae = build_vae(vae_size)
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "teacher" / "vae")
    build_unet(unet_size).save_pretrained(tmp_path / "teacher" / "unet")
    return tmp_path / "teacher"


def lcm_args(data: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["lcm", str(data), "--vae", str(teacher / "vae"), "--init", str(teacher / "unet"),
            "--out", str(out), "--cpu", "--batch-size", "4", "--log-every", "1", "--warmup", "1", *extra]


def paint(pipe: StableDiffusionPipeline) -> np.ndarray:
    out = pipe("red circle, red, circle", num_inference_steps=4, guidance_scale=1.0, output_type="np",
               generator=torch.Generator().manual_seed(1))
    return out.images[0]


def test_lcm_lora_loads_in_plain_diffusers_and_changes_the_picture(data_folder: Path, teacher: Path,
                                                                   tmp_path: Path) -> None:
    run = tmp_path / "lcm"
    result = runner.invoke(train_app, lcm_args(data_folder, teacher, run, "--steps", "3", "--rank", "4",
                                               "--lr", "1e-2", "--checkpoint-every", "2"))
    assert result.exit_code == 0, result.output + repr(result.exception)

    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 3 and report["rank"] == 4 and math.isfinite(report["loss"])
    assert report["minutes"] > 0 and report["inference"]["num_inference_steps"] == 4
    lora = run / "lcm_lora.safetensors"
    with safe_open(str(lora), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
        dtypes = {f.get_tensor(k).dtype for k in keys}
    assert meta["rank"] == "4" and meta["steps"] == "3" and meta["keypaint"] == "lcm-lora"
    assert meta["base_unet_sha256"] == unet_sha256(teacher) == report["base_unet_sha256"]
    assert "lora_adapter_metadata" in meta and dtypes == {torch.float16}
    assert all(k.startswith("unet.") for k in keys)
    assert any(".resnets." in k for k in keys) and any(".attn2.to_k." in k for k in keys)

    tokenizer, text_encoder = load_text_encoder("cpu", torch.float32)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(str(teacher / "vae")), text_encoder=text_encoder,
        tokenizer=tokenizer, unet=UNet2DConditionModel.from_pretrained(str(teacher / "unet")),
        scheduler=LCMScheduler(**TRAIN_SCHEDULE),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = paint(pipe)
    pipe.load_lora_weights(str(run), weight_name="lcm_lora.safetensors", adapter_name="lcm")
    loaded = get_peft_model_state_dict(pipe.unet, adapter_name="lcm")
    assert sorted(f"unet.{k}" for k in loaded) == sorted(keys)  # every trained layer arrived, no extra one
    assert all(torch.equal(v.half(), load_file(lora)[f"unet.{k}"]) for k, v in loaded.items())
    with_lora = paint(pipe)
    assert base.shape == with_lora.shape == (32, 32, 3)
    assert np.abs(base - with_lora).max() > 1e-3  # the LoRA was applied
    pipe.unload_lora_weights()
    assert np.allclose(paint(pipe), base, atol=1e-5)  # and only the LoRA


def test_resume_continues_from_the_checkpoint(data_folder: Path, teacher: Path, tmp_path: Path) -> None:
    run = tmp_path / "lcm"
    first = runner.invoke(train_app, lcm_args(data_folder, teacher, run, "--steps", "2", "--rank", "2"))
    assert first.exit_code == 0, first.output + repr(first.exception)
    again = runner.invoke(train_app, lcm_args(data_folder, teacher, run, "--steps", "3", "--rank", "2"))
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(train_app, lcm_args(data_folder, teacher, run, "--steps", "3", "--rank", "2",
                                                "--resume"))
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    assert json.loads((run / "report.json").read_text())["steps"] == 3


@pytest.mark.parametrize(("extra", "message"), [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--rank", "0"], "--rank must be at least 1"),
    (["--w-min", "9", "--w-max", "5"], "guidance range must be"),
])
def test_bad_options_are_short_errors(data_folder: Path, teacher: Path, tmp_path: Path, extra: list[str],
                                      message: str) -> None:
    result = runner.invoke(train_app, lcm_args(data_folder, teacher, tmp_path / "run", *extra))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_missing_data_or_teacher_is_a_short_error(data_folder: Path, teacher: Path, tmp_path: Path) -> None:
    result = runner.invoke(train_app, lcm_args(tmp_path / "nowhere", teacher, tmp_path / "run"))
    assert result.exit_code == 2 and "no such data folder" in result.output
    result = runner.invoke(train_app, lcm_args(data_folder, tmp_path, tmp_path / "run"))
    assert result.exit_code == 2 and "no VAE here" in result.output


def test_ddim_solver_follows_lcm_schedulers_timesteps() -> None:
    scheduler = LCMScheduler(**TRAIN_SCHEDULE)
    solver = DdimSolver(scheduler.alphas_cumprod, 50)
    scheduler.set_timesteps(50)
    assert sorted(scheduler.timesteps.tolist()) == solver.timesteps.tolist()
    assert solver.timesteps[0] == 19 and solver.timesteps[-1] == 999 and solver.k == 20
    # One step with the exact x0 and noise lands on the forward chain at t_n.
    x0, eps = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    index = torch.tensor([0, 10, 49])
    t_prev = (solver.timesteps[index] - solver.k).clamp(min=0)
    expected = scheduler.add_noise(x0, eps, t_prev)
    assert torch.allclose(solver.step(x0, eps, index), expected, atol=1e-5)
