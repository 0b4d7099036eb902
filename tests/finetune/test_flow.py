"""`keypaint finetune` on SD3 and Flux: a LoRA on the transformer with the rectified-flow objective, written
in diffusers' names and loaded back by the Painter; the U-Net-only methods refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.finetune.config import FinetuneConfig, FinetuneError, Method
from keypaint.finetune.train import finetune
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny_flow import tiny_flow_model


def config(home: Path, pictures: Path, tmp_path: Path, **changes: object) -> FinetuneConfig:
    values = {"images": pictures, "token": "zqstyle", "base": "tiny", "steps": 2, "batch_size": 2, "lr": 1e-2,
              "home": home, "cpu": True, "resolution": 64, "out": tmp_path / "zqstyle.safetensors",
              "run_dir": tmp_path / "run", **changes}
    return FinetuneConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [ModelKind.FLUX, ModelKind.SD3], ids=["flux", "sd3"])
def test_a_flow_lora_trains_saves_and_paints(kind: ModelKind, home: Path, pictures: Path,
                                             tmp_path: Path) -> None:
    model = tiny_flow_model(kind)
    params = GenerationParams(prompt="zqstyle, disc", steps=2, width=32, height=32, seed=2)
    [before] = Painter(model).generate(params)

    result = finetune(config(home, pictures, tmp_path), model=model, progress=False, log=lambda _: None)

    header = read_safetensors_header(result.path)
    assert all(k.startswith("transformer.") for k in header.tensors)
    assert any(".add_q_proj.lora_A." in k for k in header.tensors)  # both streams of the MMDiT
    assert header.metadata["ss_base_model_version"] == ("flux1" if kind is ModelKind.FLUX else "sd3")
    painter = Painter(model, home=home)  # the run gave the model back without its training adapter
    [plain] = painter.generate(params)
    [styled] = painter.generate(GenerationParams(prompt="zqstyle, disc", steps=2, width=32, height=32, seed=2,
                                                 loras=(LoraRef(str(result.path), 1.0),)))
    assert np.array_equal(np.asarray(plain.image), np.asarray(before.image))
    assert not np.array_equal(np.asarray(styled.image), np.asarray(plain.image))


def test_u_net_only_methods_are_refused_on_flow_models(home: Path, pictures: Path, tmp_path: Path) -> None:
    cfg = config(home, pictures, tmp_path, method=Method.TEXTUAL_INVERSION)

    with pytest.raises(FinetuneError, match="tiny-flux is a flux model: keypaint finetune trains LoRAs"):
        finetune(cfg, model=tiny_flow_model(ModelKind.FLUX), progress=False)
    assert not (tmp_path / "zqstyle.safetensors").exists()
