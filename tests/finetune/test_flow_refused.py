"""`keypaint finetune` on an SD3/Flux model: refused in one line before any picture is encoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypaint.finetune.config import FinetuneConfig, FinetuneError
from keypaint.finetune.train import finetune
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny_flow import tiny_flow_model


def test_flow_models_are_refused_with_what_to_use_instead(home: Path, pictures: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(images=pictures, token="zqstyle", base="tiny", steps=2, home=home,
                         out=tmp_path / "out.safetensors", run_dir=tmp_path / "run")

    with pytest.raises(FinetuneError, match="tiny-flux is a flux model; keypaint finetune trains the U-Net"):
        finetune(cfg, model=tiny_flow_model(ModelKind.FLUX), progress=False)
    assert not (tmp_path / "out.safetensors").exists()
