"""CPU smoke training of the real VAE and U-Net classes at toy size, through the `keypaint train` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from keypaint.cli.train_cmd import train_app
from keypaint.training.checkpoint import latest_checkpoint, read_checkpoint

runner = CliRunner()
FAST = ["--size", "tiny", "--cpu", "--batch-size", "4", "--log-every", "1", "--warmup", "1"]


def train(*args: str | Path) -> None:
    result = runner.invoke(train_app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_vae_then_unet_write_shipping_folders(data_folder: Path, tmp_path: Path) -> None:
    vae_run, unet_run = tmp_path / "vae", tmp_path / "unet"
    train("vae", data_folder, "--out", vae_run, "--steps", "3", *FAST)
    config = json.loads((vae_run / "vae" / "config.json").read_text())
    report = json.loads((vae_run / "report.json").read_text())
    assert config["latent_channels"] == 4 and config["sample_size"] == 32
    assert config["scaling_factor"] == pytest.approx(report["scaling_factor"])
    assert report["psnr_on"] == "heldout" and report["psnr_pictures"] == 2
    assert all(v.dtype.is_floating_point and v.itemsize == 2
               for v in load_file(vae_run / "vae" / "diffusion_pytorch_model.safetensors").values())

    train("unet", data_folder, "--vae", vae_run / "vae", "--out", unet_run, "--steps", "3", *FAST,
          "--style-drop", "0.15", "--all-tags", "0.3")
    unet_config = json.loads((unet_run / "unet" / "config.json").read_text())
    assert unet_config["cross_attention_dim"] == 384 and unet_config["sample_size"] == 4
    assert (unet_run / "scheduler" / "scheduler_config.json").is_file()
    assert (unet_run / "latents.safetensors").is_file()
    state = read_checkpoint(unet_run / "checkpoint").state
    assert state["step"] == 3
    assert state["config"]["style_drop"] == "0.15" and state["config"]["all_tags"] == "0.3"
    assert any((unet_run / "logs").rglob("events.out.tfevents.*"))


def test_killed_run_resumes_from_its_checkpoint(data_folder: Path, tmp_path: Path) -> None:
    from keypaint.training.vae import VaeTrainConfig, train_vae

    run = tmp_path / "vae"
    cfg = VaeTrainConfig(data=data_folder, out=run, size="tiny", batch_size=2, max_steps=4,
                         checkpoint_every=2, log_every=1, warmup_steps=1, cpu=True)

    def kill(step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(cfg, on_step=kill)
    found = latest_checkpoint(run)
    assert found is not None and read_checkpoint(found).state["step"] == 2
    assert not (run / "vae").exists()

    with pytest.raises(Exception, match="--resume"):
        train_vae(cfg)  # never trains over an existing run by accident
    cfg.resume = True
    report = train_vae(cfg)
    assert report["steps"] == 4
    assert read_checkpoint(run / "checkpoint").state["step"] == 4


def test_resume_without_checkpoint_is_a_clear_error(data_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(train_app, ["vae", str(data_folder), "--out", str(tmp_path / "none"), "--resume",
                                       *FAST])
    assert result.exit_code == 2
    assert "no checkpoint to resume from" in result.output


def test_unet_needs_a_trained_vae(data_folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(train_app, ["unet", str(data_folder), "--vae", str(tmp_path), "--out",
                                       str(tmp_path / "u"), *FAST])
    assert result.exit_code == 2
    assert "no trained VAE" in result.output


@pytest.mark.parametrize("layout", ["empty", "no-caption", "broken-image"])
def test_bad_data_folders_fail_before_training(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    if layout == "no-caption":
        from PIL import Image

        Image.new("RGB", (8, 8)).save(folder / "cat.png")
    elif layout == "broken-image":
        (folder / "cat.png").write_bytes(b"not a png")
        (folder / "cat.txt").write_text("cat")
    result = runner.invoke(train_app, ["vae", str(folder), "--out", str(tmp_path / "run"), *FAST])
    assert result.exit_code == 2
    expected = {"empty": "no images found", "no-caption": "no caption", "broken-image": "unreadable image"}
    assert expected[layout] in result.output
    assert "cat.png" in result.output or layout == "empty"
    assert not (tmp_path / "run" / "checkpoint").exists()
