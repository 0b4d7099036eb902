"""`keypaint eval style` end to end on a tiny model and toy data; `keypaint eval HELDOUT` still routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keypaint.cli.eval_cmd import eval_app
from keypaint.models.tiny import tiny_model
from keypaint.scorer.train import train_scorer
from tests.scorer.conftest import TOY_MODEL, make_squares
from tests.scorer.test_style_eval import one_style

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-style")
    train, heldout = make_squares(root / "train"), make_squares(root / "heldout", per_colour=2, seed=1)
    scorer = root / "scorer"
    train_scorer(train, scorer, steps=20, batch_size=16, model=TOY_MODEL, device="cpu", progress=False,
                 checkpoint_every=20)
    model = root / "tiny"
    tiny_model().pipe.save_pretrained(model)
    return {
        "target": one_style(train, "outline", root / "target"),
        "heldout": one_style(heldout, "outline", root / "outline-heldout"),
        "base": one_style(train, "flat", root / "base"),
        "scorer": scorer,
        "model": model,
    }


def style(data: dict[str, Path], out: Path, *extra: str) -> tuple[int, str]:
    args = [
        "style", str(data["heldout"]), "--real", str(data["target"]), "--token", "zxline",
        "--model", str(data["model"]), "--scorer", str(data["scorer"]), "--steps", "2", "--limit", "2",
        "--classifier-steps", "10", "--negatives", "20", "--device", "cpu", "--out", str(out), *extra,
    ]
    result = runner.invoke(eval_app(), args)
    return result.exit_code, result.output


def test_a_tuned_model_is_painted_judged_and_its_pictures_kept(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = style(data, out, "--base-data", str(data["base"]), "--tuned-model", str(data["model"]))
    assert code == 0, output
    report = json.loads((out / "style.json").read_text())
    assert report["names"] == 2 and report["token"] == "zxline" and report["steps"] == 2
    assert set(report["instrument"]) >= {"real_share", "base_share", "ok"}
    row = report["variants"]["tuned model"]
    assert 0.0 <= row["adoption"] <= 1.0 and 0.0 <= row["top5"] <= 1.0
    assert len(list((out / "pictures" / "tuned-model").glob("*.png"))) == 2
    assert len(list((out / "pictures" / "base").glob("*.png"))) == 2
    assert "| tuned model |" in (out / "style.md").read_text()
    # the saved instrument is reused; without base data the labels must come from the scorer folder
    code, output = style(data, tmp_path / "again", "--classifier", str(out / "style-classifier.safetensors"))
    assert code == 2 and "no label list" in output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--token", "x y"], "is not a word"),
        (["--weight", "1"], "--weight goes with --lora"),
        (["--lora", "missing.safetensors", "--weight", "3"], "within [-2, 2]"),
        (["--lora", "missing.safetensors"], "no such file"),
        ([], "give --base-data"),
    ],
)
def test_bad_input_exits_2_before_any_model(
    data: dict[str, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    base = [] if message == "give --base-data" else ["--base-data", str(data["base"])]
    code, output = style(data, tmp_path / "out", *extra, *base)
    assert code == 2 and message in output, output


def test_nothing_is_overwritten(data: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "style.json").write_text("{}")
    code, output = style(data, tmp_path / "out", "--base-data", str(data["base"]))
    assert code == 2 and "not empty" in output
    assert (tmp_path / "out" / "style.json").read_text() == "{}"


def test_eval_heldout_still_means_eval_pairs(tmp_path: Path) -> None:
    result = runner.invoke(eval_app(), [str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a folder" in result.output
    assert runner.invoke(eval_app(), ["style", "--help"]).exit_code == 0
