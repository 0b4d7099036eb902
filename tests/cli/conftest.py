from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD 1.x model saved as a diffusers folder, as a user would keep one in the model folder."""
    from keypaint.models.loaded import ModelKind
    from keypaint.models.tiny import tiny_pipeline

    folder = tmp_path_factory.mktemp("models") / "tiny"
    tiny_pipeline(ModelKind.SD1).save_pretrained(folder)
    return folder


@pytest.fixture
def home(_private_home: Path, tiny_folder: Path) -> Path:
    """$KEYPAINT_HOME with the tiny model installed as `models/tiny`."""
    models = _private_home / "models"
    models.mkdir(exist_ok=True)
    (models / "tiny").symlink_to(tiny_folder, target_is_directory=True)
    return _private_home
