"""Model kind and parameterization are read from keys, shapes and explicit hints only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.detect import detect_checkpoint
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model

from .conftest import TinyFiles
from .ldm_layout import pipeline_to_ldm


def header_of(tensors: dict[str, torch.Tensor], tmp_path: Path, metadata: dict[str, str] | None = None):
    path = tmp_path / "h.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return read_safetensors_header(path)


def unet_stub(channels: int = 4) -> dict[str, torch.Tensor]:
    return {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, channels, 1, 1)}


@pytest.mark.parametrize(("text_key", "kind"), [
    ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", ModelKind.SD1),
    ("cond_stage_model.model.token_embedding.weight", ModelKind.SD2),
    ("conditioner.embedders.1.model.token_embedding.weight", ModelKind.SDXL),
])
@pytest.mark.parametrize("channels", [4, 9])
def test_kind_from_keys(tmp_path: Path, text_key: str, kind: ModelKind, channels: int) -> None:
    detected = detect_checkpoint(header_of({**unet_stub(channels), text_key: torch.zeros(1)}, tmp_path), "m")
    assert (detected.kind, detected.inpainting) == (kind, channels == 9)
    prefix = {ModelKind.SD1: "sd15", ModelKind.SD2: "sd2", ModelKind.SDXL: "sdxl"}[kind]
    assert detected.config.startswith(prefix)
    assert detected.config.endswith("-inpainting") == (channels == 9)


SD2_TEXT = {"cond_stage_model.model.token_embedding.weight": torch.zeros(1)}


def test_sd2_defaults_to_768_v_prediction(tmp_path: Path) -> None:
    detected = detect_checkpoint(header_of({**unet_stub(), **SD2_TEXT}, tmp_path), "m")
    assert (detected.config, detected.prediction_type) == ("sd21", "v_prediction")


def test_sd2_base_by_global_step(tmp_path: Path) -> None:
    header = header_of({**unet_stub(), **SD2_TEXT}, tmp_path, {"global_step": "875000"})
    detected = detect_checkpoint(header, "m")
    assert (detected.config, detected.prediction_type) == ("sd2-base", "epsilon")


def test_sd2_by_modelspec_metadata(tmp_path: Path) -> None:
    header = header_of({**unet_stub(), **SD2_TEXT}, tmp_path, {"modelspec.prediction_type": "epsilon"})
    assert detect_checkpoint(header, "m").config == "sd2-base"


@pytest.mark.parametrize(("yaml_text", "config"), [
    ("model:\n  params:\n    parameterization: v\n", "sd21"),
    ("model:\n  params:\n    linear_start: 0.00085\n", "sd2-base"),
])
def test_sd2_by_sidecar_yaml(tmp_path: Path, yaml_text: str, config: str) -> None:
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text(yaml_text)
    assert detect_checkpoint(header_of({**unet_stub(), **SD2_TEXT}, tmp_path), "m", sidecar).config == config


def test_global_step_survives_pickle_conversion(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    """An SD 2 base .ckpt (global_step 875000) is read as epsilon; the scheduler of config_dir is kept."""
    tiny = tiny_files(ModelKind.SD2)
    ckpt = tmp_path / "base.ckpt"
    torch.save({"state_dict": pipeline_to_ldm(tiny.pipe, ModelKind.SD2), "global_step": 875000}, ckpt)
    model = load_model(ckpt, allow_pickle=True, config_dir=tiny.folder)
    assert model.kind is ModelKind.SD2
    assert model.pipe.scheduler.config.prediction_type == "epsilon"


@pytest.mark.parametrize(("tensors", "match"), [
    ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 8, 1, 1)}, "8 input channels"),
    ({**unet_stub(), "conditioner.embedders.0.model.token_embedding.weight": torch.zeros(1)}, "refiner"),
    (unet_stub(), "no text encoder weights"),
    ({"encoder.conv_in.weight": torch.zeros(1)}, "no Stable Diffusion U-Net"),
])
def test_unsupported_checkpoints(tmp_path: Path, tensors: dict[str, torch.Tensor], match: str) -> None:
    with pytest.raises(ModelError, match=match):
        detect_checkpoint(header_of(tensors, tmp_path), "m")
