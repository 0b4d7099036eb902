"""`keypaint generate --prompts FILE [--ray]`: lines and JSON lines become rows with fixed names and seeds;
a run paints what is missing (here, or with 2 Ray Data painters), so a second run resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keypaint.cli.app import app
from keypaint.cluster.bulk import read_prompts
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams
from keypaint.outputs.metadata import read_metadata

PROMPTS = '# four prompts\na red fox\n\n{"prompt": "a blue bird", "seed": 42, "steps": 3}\ngreen frog\n' \
          '{"prompt": "two cats", "batch_size": 2}\n'
TINY = ["--steps", "2", "--size", "64x64", "--model", "tiny"]


def test_lines_and_json_lines_become_rows(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(PROMPTS)
    rows = read_prompts(tmp_path / "p.txt", GenerationParams(prompt="", steps=2, seed=10))
    assert [row.line for row in rows] == [2, 4, 5, 6]
    assert [row.params["seed"] for row in rows] == [12, 42, 15, 16]  # the --seed plus the line number
    assert [row.params["steps"] for row in rows] == [2, 3, 2, 2]
    assert rows[3].names == ("000006-0.png", "000006-1.png")


@pytest.mark.parametrize(("text", "message"), [
    ('a fox\n{"prompt": "x", "sed": 1}\n', "line 2: sed is not a parameter here"),
    ("{not json\n", "line 1: not JSON"),
    ('{"prompt": "x", "steps": "many"}\n', "line 1: steps"),
    ("# nothing\n\n", "has no prompts"),
])
def test_bad_prompts_file_says_which_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(InvalidParams, match=message):
        read_prompts(tmp_path / "p.txt", GenerationParams(prompt=""))


def seed_of(path: Path) -> int:
    data = read_metadata(path).data
    assert data is not None
    return int(data["params"]["seed"])


def generate(*args: str) -> str:
    result = CliRunner().invoke(app, ["generate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_bulk_here_then_resumed_on_ray(local_ray: None, cluster_home: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(PROMPTS)
    out = tmp_path / "out"
    generate("--prompts", str(tmp_path / "p.txt"), *TINY, "--home", str(cluster_home), "--out", str(out))
    names = sorted(path.name for path in out.glob("*.png"))
    assert names == ["000002-0.png", "000004-0.png", "000005-0.png", "000006-0.png", "000006-1.png"]
    assert seed_of(out / "000004-0.png") == 42
    kept = {name: (out / name).stat().st_mtime_ns for name in names if name != "000005-0.png"}
    (out / "000005-0.png").unlink()  # as if the run had stopped before this one
    shown = generate("--prompts", str(tmp_path / "p.txt"), *TINY, "--home", str(cluster_home),
                     "--out", str(out), "--ray", "--workers", "2")
    assert "3 already painted" in shown
    assert sorted(path.name for path in out.glob("*.png")) == names
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # nothing painted twice
    assert seed_of(out / "000005-0.png") == 5  # the same seed as the first time


def test_speed_options_reach_every_prompt(cluster_home: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a red fox\n{\"prompt\": \"a blue bird\", \"steps\": 4}\n")
    out = tmp_path / "out"
    generate("--prompts", str(tmp_path / "p.txt"), *TINY, "--home", str(cluster_home), "--out", str(out),
             "--deep-cache", "2", "--token-merging", "0.5")
    for name in ("000001-0.png", "000002-0.png"):
        infotext = read_metadata(out / name).infotext or ""
        assert "DeepCache: 2" in infotext and "Token merging ratio: 0.5" in infotext, infotext


def test_bad_speed_options_with_prompts_exit_2_before_painting(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a red fox\n")
    result = CliRunner().invoke(app, ["generate", "--prompts", str(tmp_path / "p.txt"), "--model", "tiny",
                                      "--deep-cache", "0", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "within [1, 10]" in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_ray_without_prompts_is_refused() -> None:
    result = CliRunner().invoke(app, ["generate", "--ray", "--model", "tiny"])
    assert result.exit_code == 2 and "--prompts" in result.output
