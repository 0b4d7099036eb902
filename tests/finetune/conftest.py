"""Tiny real models in a private keypaint home, and a folder of a few real pictures to learn from."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_pipeline

COLOURS = ((200, 30, 30), (30, 160, 60), (40, 60, 220), (230, 190, 20))


def make_pictures(folder: Path, count: int = 4, size: int = 64) -> Path:
    """`count` black-outlined discs on white; the first has a caption file."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse(
            (size // 6, size // 6, size - size // 6, size - size // 6),
            fill=COLOURS[i % 4],
            outline="black",
            width=3,
        )
        image.save(folder / f"disc{i}.png")
    (folder / "disc0.txt").write_text("red disc, circle\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Saved diffusers folders: tiny (SD 1.x, seed 0), tiny-other (SD 1.x, seed 1), tiny-xl (SDXL)."""
    root = tmp_path_factory.mktemp("finetune-models")
    tiny_pipeline(ModelKind.SD1).save_pretrained(root / "tiny")
    tiny_pipeline(ModelKind.SD1, seed=1).save_pretrained(root / "tiny-other")
    tiny_pipeline(ModelKind.SDXL).save_pretrained(root / "tiny-xl")
    return root


@pytest.fixture
def home(_private_home: Path, tiny_models: Path) -> Path:
    """$KEYPAINT_HOME with the tiny models installed under models/."""
    models = _private_home / "models"
    models.mkdir(exist_ok=True)
    for folder in tiny_models.iterdir():
        (models / folder.name).symlink_to(folder, target_is_directory=True)
    return _private_home


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    return make_pictures(tmp_path / "pictures")
