"""Shipping the LCM-LoRA: its header names the U-Net it was distilled from; another U-Net is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from keypaint.builtin import WEIGHTS_DIR, unet_hashes, unet_sha256
from keypaint.builtin.pack import LCM_NAME, compact_part, pack_lcm
from keypaint.core.adapters import read_lora_file
from keypaint.errors import ModelError

SHIPPED = WEIGHTS_DIR / "loras" / f"{LCM_NAME}.safetensors"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A `keypaint train lcm` run folder holding the shipped LoRA and a report naming the shipped U-Net."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(SHIPPED, folder / "lcm_lora.safetensors")
    report = {"steps": 12, "minutes": 0.5, "rank": 32, "base_unet_sha256": unet_sha256(), "device": "cpu"}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    (folder / "unet").mkdir(parents=True)
    for path in (WEIGHTS_DIR / "unet").iterdir():
        (folder / "unet" / path.name).symlink_to(path)
    return folder


def test_pack_writes_the_lora_with_keypaint_metadata(run: Path, dest: Path) -> None:
    target = pack_lcm(run, dest)
    assert target == dest / "loras" / f"{LCM_NAME}.safetensors"
    file = read_lora_file(target)
    assert file.info is not None
    assert (file.info.method, file.info.base_sha256, file.info.steps) == ("lcm", unet_sha256(), 12)
    assert file.header.metadata["ss_base_model_version"] == "keypaint_emoji"
    assert set(file.header.tensors) == set(read_lora_file(SHIPPED).header.tensors)


def test_a_lora_from_another_unet_is_refused(run: Path, dest: Path) -> None:
    report = json.loads((run / "report.json").read_text())
    (run / "report.json").write_text(json.dumps({**report, "base_unet_sha256": "0" * 64}))
    with pytest.raises(ModelError, match="distilled from U-Net 0000000000"):
        pack_lcm(run, dest)
    assert not (dest / "loras").exists()


def test_the_shipped_lora_names_the_shipped_unet() -> None:
    info = read_lora_file(SHIPPED).info
    assert info is not None and info.base_sha256 in unet_hashes() and info.method == "lcm"


def test_compact_part_replaces_plain_files_and_keeps_their_hash(tmp_path: Path) -> None:
    import torch
    from diffusers import AutoencoderKL

    from keypaint.builtin import load_part, part_sha256
    from keypaint.models.checkpoint_files import read_safetensors_header
    from keypaint.models.compact import FILENAME, SOURCE_KEY

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32)
    vae.half().save_pretrained(tmp_path / "vae", max_shard_size="100KB")
    before = part_sha256(tmp_path / "vae")
    assert len(list((tmp_path / "vae").glob("*.safetensors"))) > 1  # shards and their index
    size = compact_part(tmp_path / "vae")
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == ["config.json", FILENAME]
    assert size == (tmp_path / "vae" / FILENAME).stat().st_size
    assert read_safetensors_header(tmp_path / "vae" / FILENAME).metadata[SOURCE_KEY] == before
    assert part_sha256(tmp_path / "vae") != before
    loaded = load_part(AutoencoderKL, tmp_path / "vae", torch.float32)
    assert set(loaded.state_dict()) == set(vae.state_dict())
    with pytest.raises(ModelError, match="no plain"):
        compact_part(tmp_path / "vae")
