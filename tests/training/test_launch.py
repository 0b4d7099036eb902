"""`accelerate launch` with 2 CPU processes (gloo) for `keypaint train unet` and `keypaint finetune`.

The real launcher starts two real processes (torchrun under `--multi_gpu`; `--cpu` on keypaint's side makes
each an accelerate MULTI_CPU process on gloo); tiny models, tiny data, 2 steps. What is checked: both
processes trained together (the report says 2), everything is written once, by the main process, and loads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from diffusers import UNet2DConditionModel
from safetensors import safe_open
from typer.testing import CliRunner

from keypaint.cli.train_cmd import train_app
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_pipeline
from keypaint.training.checkpoint import read_checkpoint
from tests.finetune.conftest import make_pictures

TINY = ["--size", "tiny", "--cpu", "--batch-size", "4", "--log-every", "1", "--warmup", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(tmp_path: Path, *args: str | Path) -> str:
    """`accelerate launch` 2 processes of `python -m keypaint ARGS`; their output (the run must succeed)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--num_cpu_threads_per_process", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "keypaint",
               *map(str, args)]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}  # no user's accelerate config applies
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def test_train_unet_on_two_processes(data_folder: Path, tmp_path: Path) -> None:
    vae = tmp_path / "vae"
    made = CliRunner().invoke(train_app, ["vae", str(data_folder), "--out", str(vae), "--steps", "2", *TINY])
    assert made.exit_code == 0, made.output
    run = tmp_path / "unet"

    output = launch(tmp_path, "train", "unet", data_folder, "--vae", vae / "vae", "--out", run,
                    "--steps", "2", "--checkpoint-every", "1", *TINY)

    assert output.count("unet done:") == 1 and output.count("unet step 2 loss") == 1  # the main process
    report = json.loads((run / "report.json").read_text())
    assert report["processes"] == 2 and report["steps"] == 2
    assert read_checkpoint(run / "checkpoint").state["step"] == 2
    written = ["checkpoint", "latents.safetensors", "logs", "report.json", "scheduler", "unet"]
    assert sorted(p.name for p in run.iterdir()) == written  # no leftover temp folders
    writers = {p.name.split(".")[-2] for p in (run / "logs").rglob("events.out.tfevents.*")}
    assert len(writers) == 1  # the trackers' files (scalars, hparams) come from one process id
    unet = UNet2DConditionModel.from_pretrained(str(run / "unet"))
    assert unet.config.sample_size == 4


def test_finetune_on_two_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tiny_pipeline(ModelKind.SD1).save_pretrained(home / "models" / "tiny")
    pictures = make_pictures(tmp_path / "pictures")

    output = launch(tmp_path, "finetune", pictures, "--token", "zqstyle", "--base", "tiny", "--steps", "2",
                    "--batch-size", "2", "--cpu", "--lr", "0.01", "--checkpoint-every", "1", "--home", home)

    lora = home / "loras" / "zqstyle.safetensors"
    assert output.count("use it: keypaint generate") == 1, output[-2000:]
    assert [p.name for p in lora.parent.iterdir()] == [lora.name]  # written once, no temp file left
    run = home / "finetune" / "zqstyle-lora"
    assert json.loads((run / "report.json").read_text())["steps"] == 2
    assert read_checkpoint(run / "checkpoint").state["step"] == 2
    with safe_open(str(lora), "pt") as f:
        assert json.loads(f.metadata()["keypaint"])["steps"] == 2
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert tensors and all(t.isfinite().all() for t in tensors.values())
