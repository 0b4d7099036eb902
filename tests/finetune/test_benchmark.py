"""The style benchmark's own checks, and a small run end to end on a made-up black-and-white style."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune import colourfulness, in_style  # noqa: E402


def disc(fill: str | tuple[int, int, int], size: int = 128) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((20, 20, size - 20, size - 20), fill=fill)
    return image


def test_style_check_takes_black_drawings_only() -> None:
    assert colourfulness(disc("black")) == 0.0 and in_style(disc("black"))
    assert colourfulness(disc((220, 30, 30))) > 50 and not in_style(disc((220, 30, 30)))
    assert not in_style(Image.new("RGB", (128, 128), "white"))  # a blank page is not a drawing


def test_small_run_trains_paints_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    names = ["red apple", "cat face"]
    (data / "ink" / "train").mkdir(parents=True)
    (data / "ink" / "heldout").mkdir()
    for i, label in enumerate(["sun", "moon", "star"]):
        disc("black").save(data / "ink" / "train" / f"{i}.png")
        (data / "ink" / "train" / f"{i}.txt").write_text(label)
    rows = []
    for i, label in enumerate(names):
        disc("black").save(data / "ink" / "heldout" / f"h{i}.png")
        rows.append(json.dumps({"file_name": f"h{i}.png", "text": label, "label": label}))
    (data / "ink" / "heldout" / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    sources = {"heldout": names, "styles": {"ink": {"token": "zqink", "train": ["sun", "moon", "star"]}}}
    (data / "sources.json").write_text(json.dumps(sources))

    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "finetune.py"),
            "--data",
            str(data),
            "--out",
            str(out),
            "--quick",
            "--steps",
            "4",
            "--gen-steps",
            "2",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    entry = results["styles"]["ink"]
    assert results["names"] == 2 and entry["adoption_real"] == 1.0 and entry["file_bytes"] > 0
    assert set(entry["by_weight"]) == {"1", "0.6"} and 0 <= entry["by_weight"]["1"]["top5"] <= 1
    assert "| ink | 1 |" in done.stdout and "| ink | 0.6 |" in done.stdout
    assert Image.open(out / "finetune-ink.png").size == (2 * 64, 4 * 68 - 4)  # real, base, LoRA 1 and 0.6
