"""`keypaint eval`: held-out pairs, scoring, report files, and the command end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from keypaint.cli.eval_cmd import eval_command
from keypaint.data.folder import load_folder
from keypaint.models.tiny import tiny_model
from keypaint.scorer.evaluate import heldout_pairs, real_pictures, run_report
from keypaint.scorer.model import Scorer


def test_heldout_pairs_are_distinct_label_style_pairs(squares_heldout: Path) -> None:
    pairs = heldout_pairs(load_folder(squares_heldout))
    assert len(pairs) == 12  # 6 colours x 2 styles, 2 pictures each
    assert len({(p.label, p.style) for p in pairs}) == 12
    assert pairs[0].prompt == "red square, flat style"
    assert len(heldout_pairs(load_folder(squares_heldout), limit=3)) == 3


def test_real_pictures_scored_against_themselves(
    trained: Path, squares_heldout: Path, tmp_path: Path
) -> None:
    scorer = Scorer.load(trained)
    pairs = heldout_pairs(load_folder(squares_heldout))
    real = real_pictures(pairs, 32)
    labels = sorted({p.label for p in pairs})
    results, paths = run_report(scorer, pairs, real, real, labels, tmp_path, grid=8, extra={"model": "real"})
    assert results["generated"] == results["real"]
    assert results["real"]["top1"] >= 0.8
    assert results["top5_ratio"] == 1.0
    assert results["frechet_distance"] == pytest.approx(0.0, abs=1e-4)
    assert json.loads(paths[0].read_text())["model"] == "real"
    assert "| generated |" in paths[1].read_text()
    assert Image.open(paths[2]).size == (8 * 96, 2 * 96)


def test_eval_command_end_to_end_on_a_tiny_model(
    trained: Path, squares: Path, squares_heldout: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "tiny"
    tiny_model().pipe.save_pretrained(model_dir)
    app = typer.Typer()
    app.command()(eval_command)
    args = [
        str(squares_heldout),
        "--out",
        str(tmp_path / "eval"),
        "--model",
        str(model_dir),
        "--scorer",
        str(trained),
        "--labels-from",
        str(squares),
        "--steps",
        "2",
        "--limit",
        "4",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["pairs"] == 4 and report["labels"] == 6 and report["steps"] == 2
    assert 0.0 <= report["generated"]["top5"] <= 1.0
    assert report["frechet_distance"] > 0.0  # noise pictures are far from the real squares
    assert (tmp_path / "eval" / "samples.png").is_file()


def test_eval_command_fails_loudly_without_a_scorer(squares_heldout: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny"
    tiny_model().pipe.save_pretrained(model_dir)
    app = typer.Typer()
    app.command()(eval_command)
    result = CliRunner().invoke(
        app, [str(squares_heldout), "--model", str(model_dir), "--scorer", str(tmp_path), "--device", "cpu"]
    )
    assert result.exit_code == 2
    assert "not a scorer folder" in result.output
