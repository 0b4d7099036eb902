"""`keypaint generate --lcm`: the built-in model's LCM-LoRA, recorded so that `--from` makes it again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keypaint.outputs.store import read_metadata
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fast"], "drop --fast"),
        (["--sampler", "Euler"], "drop --sampler"),
        (["--model", "tiny"], "keypaint-emoji"),  # the LoRA's base is named in the error
    ],
)
def test_lcm_refuses_what_it_cannot_run(home: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = run("generate", "apple", "--lcm", "--steps", "2", "--out", str(tmp_path), *args)
    assert code == 2, output
    assert message in output and "Traceback" not in output
