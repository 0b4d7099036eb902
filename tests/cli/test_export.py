"""`keypaint export`: the default export (fp16) loads and paints in stock diffusers with no arguments."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from diffusers import DiffusionPipeline
from typer.testing import CliRunner

from keypaint.builtin import weights_present
from keypaint.cli.train_cmd import export_command

app = typer.Typer()
app.command("export")(export_command)  # mounted the same way in keypaint.cli.app
runner = CliRunner()


@pytest.mark.skipif(not weights_present(), reason="built-in weights not trained yet")
def test_default_export_paints_in_stock_diffusers(tmp_path: Path, umask_022: None) -> None:
    dest = tmp_path / "keypaint-emoji"
    outcome = runner.invoke(app, ["builtin", str(dest)])  # the default: fp16 weights
    assert outcome.exit_code == 0, outcome.output
    assert {stat.S_IMODE(p.stat().st_mode) for p in dest.rglob("*") if p.is_file()} == {0o644}

    pipe = DiffusionPipeline.from_pretrained(str(dest))  # no arguments, as a diffusers user writes it
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float32}
    image = pipe("red apple", num_inference_steps=2, height=64, width=64, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    # transformers 4.x builds the BertTokenizer from vocab.txt: line i is token i
    lines = (dest / "tokenizer" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == pipe.tokenizer.convert_ids_to_tokens(list(range(len(pipe.tokenizer))))
    half = DiffusionPipeline.from_pretrained(str(dest), torch_dtype=torch.float16)
    assert {half.unet.dtype, half.text_encoder.dtype} == {torch.float16}


def test_an_existing_folder_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    started = time.perf_counter()
    # a model that does not exist: the folder is named first, so nothing was loaded
    outcome = runner.invoke(app, ["no-such-model", str(dest)])
    assert outcome.exit_code == 2
    assert "exists and is not empty" in outcome.output and "no-such-model" not in outcome.output
    assert time.perf_counter() - started < 5
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
