"""`keypaint.Painter` (keypaint.api): the Python API is handed the built-in model, the best-of scorer and
the writer behind `GeneratedImage.save`, which writes what `keypaint generate` writes, marks included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import keypaint
from keypaint.cli.verify_cmd import verify_command
from keypaint.core.painter import GeneratedImage, Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams, ModelError, OutputError
from keypaint.outputs.metadata import read_metadata
from keypaint.outputs.results import infotext_for, save_generated

app = typer.Typer()
app.command("verify")(verify_command)  # `keypaint verify`, mounted as keypaint.cli.app mounts it
runner = CliRunner()


@pytest.fixture(scope="module")
def result(tiny_sd1) -> GeneratedImage:
    params = GenerationParams(prompt="red apple", steps=2, width=128, height=128, seed=5)
    return keypaint.Painter(tiny_sd1).generate(params)[0]


def _verify(path: Path) -> dict:
    outcome = runner.invoke(app, ["--json", str(path)])
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout)


@pytest.mark.parametrize("name", ["apple.png", "apple.jpg", "apple.webp"])
def test_a_saved_result_passes_keypaint_verify(result: GeneratedImage, tmp_path: Path, name: str) -> None:
    path = result.save(tmp_path / name)
    assert path == tmp_path / name
    report = _verify(path)
    assert [report[m]["status"] for m in ("metadata", "watermark", "c2pa")] == ["found"] * 3, report
    meta = read_metadata(path)
    assert meta.infotext == infotext_for(result)
    assert meta.data is not None and meta.data["params"]["seed"] == 5


def test_save_writes_what_the_cli_path_writes(result: GeneratedImage, tmp_path: Path) -> None:
    saved = result.save(tmp_path / "api.png")
    (tmp_path / "cli").mkdir()
    numbered = save_generated(result, tmp_path / "cli")  # what `keypaint generate` calls
    with Image.open(saved) as a, Image.open(numbered) as b:
        assert sorted(a.info) == sorted(b.info)
        assert a.info["parameters"] == b.info["parameters"]
    mine, theirs = read_metadata(saved).data, read_metadata(numbered).data
    assert mine is not None and theirs is not None
    assert {k: v for k, v in mine.items() if k != "created"} == {k: v for k, v in theirs.items()
                                                                if k != "created"}


def test_save_never_overwrites_and_names_bad_extensions(result: GeneratedImage, tmp_path: Path) -> None:
    taken = tmp_path / "apple.png"
    taken.write_bytes(b"someone's picture")
    with pytest.raises(OutputError, match="exists"):
        result.save(taken)
    assert taken.read_bytes() == b"someone's picture"
    with pytest.raises(InvalidParams, match=r"\.png, \.jpg"):
        result.save(tmp_path / "apple.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apple.png"]  # no temp file left


def test_a_core_painter_writes_nothing_and_says_how_to_save(tiny_sd1, tmp_path: Path) -> None:
    params = GenerationParams(prompt="red apple", steps=2, width=64, height=64, seed=5)
    [bare] = Painter(tiny_sd1).generate(params)  # core is handed no writer: it never imports outputs
    with pytest.raises(OutputError, match=r"keypaint\.Painter"):
        bare.save(tmp_path / "bare.png")
    assert not list(tmp_path.iterdir())


def test_the_python_api_painter_has_the_built_in_model_and_a_best_of_scorer(tiny_sd1) -> None:
    painter = keypaint.Painter(tiny_sd1)
    # the built-in model's shipped LoRA is found by name, as on the CLI
    files = painter.plan(GenerationParams(prompt="red apple <lora:keypaint-lcm:1>"))
    assert [f.path.name for f, _ in files.loras] == ["keypaint-lcm.safetensors"]
    with pytest.raises(ModelError, match="unknown LoRA 'keypaint-lcm'"):
        Painter(tiny_sd1).plan(GenerationParams(prompt="red apple <lora:keypaint-lcm:1>"))
    # best-of needs no scorer handed in: the shipped one rates the candidates
    params = GenerationParams(prompt="red apple", steps=2, width=64, height=64, seed=5, best_of=2)
    [best] = painter.generate(params)
    assert best.seed in (5, 6) and best.extra["Best of"] == 2
    assert -1.0 <= best.extra["Match score"] <= 1.0
