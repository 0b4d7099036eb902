"""`keypaint eval style`'s measure: the sets it stands on; judging pictures with the classifier and scorer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from keypaint.data.folder import load_folder
from keypaint.errors import KeypaintError
from keypaint.scorer.model import Scorer
from keypaint.scorer.style_eval import (
    fit_instrument,
    judge_style,
    picture_rows,
    report_markdown,
    style_sets,
)


def one_style(source: Path, style: str, dest: Path) -> Path:
    """The pictures of one style of a squares folder, with their metadata."""
    dest.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (source / "metadata.jsonl").read_text().splitlines() if line]
    kept = [row for row in rows if row["style"] == style]
    for row in kept:
        shutil.copy(source / row["file_name"], dest / row["file_name"])
    (dest / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in kept))
    return dest


@pytest.fixture(scope="module")
def folders(
    squares: Path, squares_heldout: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("style")
    return {
        "target": one_style(squares, "outline", root / "target"),
        "heldout": one_style(squares_heldout, "outline", root / "heldout"),
        "base": one_style(squares, "flat", root / "base"),
    }


def test_evaluated_names_are_kept_out_of_the_classifier_data(folders: dict[str, Path]) -> None:
    sets = style_sets(load_folder(folders["target"]), load_folder(folders["heldout"]),
                      load_folder(folders["base"]), limit=3)
    assert len(sets.heldout) == 3 and len(set(sets.names)) == 3  # one picture per name
    assert not {r.fields["label"] for r in sets.target} & set(sets.names)
    assert not {r.fields["label"] for r in sets.base} & set(sets.names)
    assert set(sets.names) <= set(sets.labels)
    assert sets.with_labels(["a", "b"]).labels == sorted({"a", "b", *sets.names})
    with pytest.raises(KeypaintError, match="at least 2"):
        style_sets(load_folder(folders["target"]), load_folder(folders["heldout"])[:1], [], limit=None)


def test_real_in_style_pictures_adopt_fully_and_keep_all_content(
    folders: dict[str, Path], trained: Path
) -> None:
    # the "painted" pictures are the real ones: in the style, and showing what they should
    base = load_folder(folders["base"])
    sets = style_sets(load_folder(folders["target"]), load_folder(folders["heldout"]), base, limit=3)
    sets = sets.with_labels([r.fields["label"] for r in load_folder(folders["base"])])
    classifier = fit_instrument(sets, steps=60, seed=0)
    real = [Image.open(r.path).convert("RGB").resize((32, 32)) for r in sets.heldout]
    flat = [Image.open(r.path).convert("RGB").resize((32, 32)) for r in base][: len(real)]
    report, compared = judge_style(Scorer.load(trained), sets, classifier, flat, {"as real": real}, size=32)
    assert report.instrument["real_share"] > 0.5  # three outline colours it never saw (60 steps)
    assert report.base["adoption"] <= 0.05  # flat squares are not in the outline style
    assert report.variants["as real"]["adoption"] == report.instrument["real_share"]
    assert report.variants["as real"]["content_ratio"] == pytest.approx(1.0)
    assert len(compared) == len(sets.names)
    table = report_markdown(report, "zxline")
    assert "| as real |" in table and "valid" in table
    assert report.instrument["ok"] == (report.instrument["real_share"] >= 0.95)
    assert picture_rows([real, flat]).size == (64 * len(real), 2 * 64 + 4)
    with pytest.raises(KeypaintError, match="pictures for"):
        judge_style(Scorer.load(trained), sets, classifier, flat[:1], {}, size=32)


def test_a_monochrome_style_leaves_out_names_the_base_draws_in_monochrome(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    ink = tmp_path / "ink"  # the outline squares in black ink: a monochrome target style
    ink.mkdir()
    for record in load_folder(folders["target"]):
        inked = Image.open(record.path).convert("L").point(lambda v: 0 if v < 250 else 255)
        inked.save(ink / record.path.name)
    shutil.copy(folders["target"] / "metadata.jsonl", ink / "metadata.jsonl")
    evaluated = {"red square", "green square", "black square"}
    heldout = [r for r in load_folder(folders["heldout"]) if r.fields["label"] in evaluated]
    base = load_folder(folders["base"])
    sets = style_sets(load_folder(ink), heldout, base)
    assert sets.left_out == ("black square",)  # flat black squares are already ink on white
    assert sets.names == ["red square", "green square"]
    assert not any(r.fields["label"] == "black square" for r in sets.base + sets.target)
    assert style_sets(load_folder(ink), heldout, base, monochrome_names=True).left_out == ()
    assert style_sets(load_folder(folders["target"]), heldout, base).left_out == ()  # a colour style
