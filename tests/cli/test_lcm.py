"""`keypaint generate --lcm`: the built-in model's LCM-LoRA, recorded so that `--from` makes it again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keypaint.outputs.metadata import read_metadata
from tests.cli.test_generate import run, saved


def test_lcm_paints_in_few_steps_and_from_remakes_it(home: Path, tmp_path: Path) -> None:
    request = ["red apple", "--steps", "2", "--seed", "4"]
    code, output = run("generate", *request, "--lcm", "--out", str(tmp_path / "a"))
    assert code == 0, output
    [first] = saved(output)
    meta = read_metadata(first)
    assert meta.infotext is not None
    for field in ("Steps: 2", "Sampler: LCM", "CFG scale: 1", "Lora weights: \"keypaint-lcm: 1\""):
        assert field in meta.infotext
    assert meta.data is not None and meta.data["params"]["loras"] == [["keypaint-lcm", 1.0]]
    code, output = run("generate", "--from", str(first), "--out", str(tmp_path / "b"))
    assert code == 0, output
    [again] = saved(output)
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))
    code, output = run("generate", *request, "--sampler", "LCM", "--cfg", "1", "--out", str(tmp_path / "c"))
    assert code == 0, output
    [without] = saved(output)  # the same sampler without the LoRA paints another picture
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(without)))


def test_lcm_runs_on_the_cpu_fast_path_too(home: Path, tmp_path: Path) -> None:
    """--lcm --fast: the U-Net with the LCM-LoRA on, exported to ONNX; the picture is the plain path's."""
    request = ["red apple", "--steps", "2", "--seed", "4", "--lcm", "--device", "cpu"]
    code, output = run("generate", *request, "--out", str(tmp_path / "plain"))
    assert code == 0, output
    code, fast_output = run("generate", *request, "--fast", "--out", str(tmp_path / "fast"))
    assert code == 0, fast_output
    [plain], [fast] = saved(output), saved(fast_output)
    difference = np.abs(np.asarray(Image.open(plain), int) - np.asarray(Image.open(fast), int)).max()
    assert difference <= 2
    meta = read_metadata(fast)
    assert meta.data is not None and meta.data["params"]["loras"] == [["keypaint-lcm", 1.0]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "Euler"], "drop --sampler"),
        (["--model", "tiny"], "keypaint-emoji"),  # the LoRA's base is named in the error
    ],
)
def test_lcm_refuses_what_it_cannot_run(home: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = run("generate", "apple", "--lcm", "--steps", "2", "--out", str(tmp_path), *args)
    assert code == 2, output
    assert message in output and "Traceback" not in output
