"""`keypaint generate / info / models / samplers` through the real CLI, on a tiny model on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.app import app
from keypaint.outputs.metadata import read_metadata

runner = CliRunner()
TINY = ["--model", "tiny", "--steps", "2"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def saved(output: str) -> list[Path]:
    return [
        Path(words[0]) for words in map(str.split, output.splitlines()) if words and words[0].endswith(".png")
    ]


def test_generate_saves_numbered_pngs_with_their_story(home: Path, tmp_path: Path) -> None:
    code, output = run(
        "generate", "red apple", "fruit", *TINY, "--seed", "7", "--batch", "2", "--out", str(tmp_path)
    )
    assert code == 0, output
    paths = saved(output)
    assert [p.name for p in paths] == ["00000-7.png", "00001-8.png"]
    meta = read_metadata(paths[1])
    assert meta.infotext is not None and meta.infotext.startswith("red apple, fruit\n")
    assert "Seed: 8" in meta.infotext and "Model: tiny" in meta.infotext and "Steps: 2" in meta.infotext
    assert meta.data is not None and meta.data["params"]["seed"] == 8
    assert meta.data["model"]["sha256"]


def test_from_remakes_the_same_picture_and_info_prints_it(home: Path, tmp_path: Path) -> None:
    code, output = run(
        "generate",
        "(red:1.3) apple",
        "-n",
        "green",
        *TINY,
        "--seed",
        "3",
        "--sampler",
        "Euler a",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, output
    [first] = saved(output)
    code, output = run("generate", "--from", str(first), "--model", "tiny", "--out", str(tmp_path / "b"))
    assert code == 0, output
    [again] = saved(output)
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))
    code, output = run("info", str(again))
    assert code == 0
    assert "(red:1.3) apple" in output and "Negative prompt: green" in output and "Sampler: Euler a" in output


def test_no_expand_is_recorded_and_kept_by_from(home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "red apple", *TINY, "--seed", "1", "--no-expand", "--out", str(tmp_path))
    assert code == 0, output
    [first] = saved(output)
    meta = read_metadata(first)
    assert meta.data is not None and meta.data["params"]["expand_keywords"] is False
    assert meta.infotext is not None and "Keyword expansion: off" in meta.infotext
    code, output = run("generate", "--from", str(first), "--model", "tiny", "--out", str(tmp_path / "b"))
    assert code == 0, output
    again = read_metadata(saved(output)[0])
    assert again.data is not None and again.data["params"]["expand_keywords"] is False
    code, output = run("generate", "--from", str(first), *TINY, "--expand", "--out", str(tmp_path / "c"))
    assert code == 0, output
    assert read_metadata(saved(output)[0]).data["params"]["expand_keywords"] is True  # type: ignore[index]


def test_token_merging_is_written_into_the_picture(home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "red apple", *TINY, "--token-merging", "0.5", "--out", str(tmp_path))
    assert code == 0, output
    meta = read_metadata(saved(output)[0])
    assert meta.infotext is not None and "Token merging ratio: 0.5" in meta.infotext


def test_models_and_samplers_list(home: Path) -> None:
    code, output = run("models")
    assert code == 0 and "tiny" in output and "diffusers" in output
    from keypaint.builtin import WEIGHTS_DIR

    builtin = next(line for line in output.splitlines() if "keypaint-emoji" in line)
    assert " MB " in builtin  # its size, like every other model's
    assert str(WEIGHTS_DIR) in "".join(line.split("│")[-2].strip() for line in output.splitlines()
                                       if line.count("│") > 2)  # its path, folded over lines
    code, output = run("samplers")
    assert code == 0 and "DPM++ 2M Karras" in output and "DPMSolverMultistepScheduler" in output


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "init": tmp_path / "init.png",
        "mask": tmp_path / "mask.png",
        "bad": tmp_path / "bad.png",
        "pickle": tmp_path / "model.ckpt",
        "corrupt": tmp_path / "broken.safetensors",
    }
    Image.new("RGB", (64, 64), "red").save(paths["init"])
    Image.new("L", (32, 32), 255).save(paths["mask"])
    paths["bad"].write_bytes(b"not a picture")
    paths["pickle"].write_bytes(b"\x80\x04K\x01.")
    paths["corrupt"].write_bytes(b"\xff" * 64)
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "Eulr"], "unknown sampler"),
        (["--model", "nope"], "nope"),
        (["--size", "100x64"], "--size: width must be a multiple of 8"),
        (["--size", "8192x8192"], "pixel budget"),
        (["--steps", "0"], "steps"),
        (["--steps", "1001"], "steps"),
        (["--cfg", "-1"], "--cfg: must be >= 0"),
        (["--batch", "17"], "--batch: must be within [1, 16]"),
        (["--count", "0"], "--count:"),
        (["--steps", "abc"], "'--steps'"),
        (["--stepz", "3"], "No such option: --stepz"),
        (["--strength", "1.5", "--init", "{init}"], "strength"),
        (["--init", "{init}", "--mask", "{mask}"], "does not match"),
        (["--init", "{bad}"], "not a readable image"),
        (["--init", "{missing}"], "does not exist"),
        (["--model", "{pickle}"], "allow-pickle"),
        (["--model", "{corrupt}"], "broken.safetensors"),
        (["--model", "{missing}"], "missing"),
        (["--out", "{bad}/sub"], "bad.png"),
        (["--token-merging", "0.9"], "ratio in [0, 0.75]"),
        (["--token-merging", "0.5", "--fast"], "cannot be combined with fast"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    home: Path, images: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    paths = {**{k: str(v) for k, v in images.items()}, "missing": str(tmp_path / "missing.safetensors")}
    filled = [a.format(**paths) for a in args]
    if "--model" not in filled:
        filled += ["--model", "tiny"]
    code, output = run("generate", "apple", "--steps", "2", "--out", str(tmp_path / "out"), *filled)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 2  # one line (rich may wrap a long path once)


def test_entry_point_exits_2_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "KEYPAINT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "keypaint", "generate", "apple", "--steps", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "steps" in proc.stderr and "Traceback" not in proc.stderr


REFUSE_IN_A_FRESH_PROCESS = """
import sys
from typer.testing import CliRunner
from keypaint.cli.app import app
result = CliRunner().invoke(app, sys.argv[1:])
print(result.exit_code, "torch" in sys.modules, " ".join(result.output.split()))
"""


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        ("garbage", [], "not a valid .safetensors file"),
        ("pickle", [], "keypaint export model.ckpt FOLDER --allow-pickle"),
        ("sparse", [], "1,000.0 GB is more than the 32.0 GB allowed"),
        ("sparse", ["--max-model-gb", "2000"], "no Stable Diffusion U-Net"),
        ("garbage", ["--max-model-gb", "0"], "more than 0 GB"),
    ],
)
def test_a_bad_model_is_refused_before_pytorch_is_imported(tmp_path: Path, make: str, extra: list[str],
                                                            message: str) -> None:
    """Refusing --model takes milliseconds, not the seconds `import torch` takes (nor a terabyte's hash)."""
    if make == "pickle":
        path = tmp_path / "model.ckpt"
        path.write_bytes(b"\x80\x04K\x01.")
    else:
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"\xff" * 64 if make == "garbage" else b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
        if make == "sparse":
            os.truncate(path, 10**12)
    env = {**os.environ, "KEYPAINT_HOME": str(tmp_path / "home")}
    env.pop("KEYPAINT_MAX_MODEL_GB", None)
    args = ["generate", "apple", "--model", str(path), "--out", str(tmp_path / "out"), *extra]
    proc = subprocess.run([sys.executable, "-c", REFUSE_IN_A_FRESH_PROCESS, *args], capture_output=True,
                          text=True, env=env, timeout=120)
    code, torch_imported, output = proc.stdout.strip().split(" ", 2)
    assert (code, torch_imported) == ("2", "False"), proc.stdout + proc.stderr
    assert message in output and "weights_only" not in output


def test_empty_keywords_are_refused(home: Path, tmp_path: Path) -> None:
    for keywords in ([""], ["", "  "]):
        code, output = run("generate", *keywords, "--model", "tiny", "--out", str(tmp_path))
        assert code == 2 and "keywords: are empty" in output, output
    assert not any(tmp_path.iterdir())


def test_help_reads_as_plain_typer_help() -> None:
    code, output = run("generate", "--help")
    assert code == 0
    assert '"[shadow]"' in output and "[default: 20]" in output  # no rich markup eats bracketed text
    assert "--no-watermark " in output and "--no-no-watermark" not in output and "--no-no-c2pa" not in output
    assert "--fast / --no-fast" in output and "<bool>" not in output
    assert "--help" in output and "Show this message and exit." in output


def test_a_far_off_size_warns_and_paints(home: Path, tmp_path: Path) -> None:
    code, output = run("generate", "cat", *TINY, "--size", "256x256", "--out", str(tmp_path))
    assert code == 0, output
    assert "warning: 256x256 is far from the 64x64" in output
    assert Image.open(saved(output)[0]).size == (256, 256)
