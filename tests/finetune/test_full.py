"""Full fine-tuning on a tiny model: a diffusers folder that generate loads; large bases refused up front."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.finetune import FinetuneConfig, FinetuneError, FinetuneInfo, Method
from keypaint.finetune.full import FULL_MAX_UNET_BYTES, unet_bytes
from keypaint.finetune.train import finetune, plan
from keypaint.models.checkpoint_files import read_safetensors_header


def config(home: Path, pictures: Path, **changes: object) -> FinetuneConfig:
    base = FinetuneConfig(images=pictures, token="zqfull", base="tiny", method=Method.FULL, steps=2,
                          batch_size=2, lr=1e-3, home=home, cpu=True)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_full_finetune_writes_a_model_folder_that_generate_loads(home: Path, pictures: Path) -> None:
    painter = Painter.load("tiny", home=home)
    before = {k: v.clone() for k, v in painter.model.pipe.unet.state_dict().items()}
    result = finetune(config(home, pictures), model=painter.model, progress=False)
    after = painter.model.pipe.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model handed in is given back
    assert not any(p.requires_grad for p in painter.model.pipe.unet.parameters())

    folder = home / "models" / "zqfull"
    assert result.path == folder and (folder / "model_index.json").is_file()
    assert result.bytes == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    shards = sorted((folder / "unet").glob("*.safetensors"))
    assert shards and all(f.stat().st_size <= 15_000_000 for f in folder.rglob("*.safetensors"))
    header = read_safetensors_header(shards[0])
    assert {info.dtype for info in header.tensors.values()} == {"F16"}
    info = FinetuneInfo.from_header(header.metadata)
    assert info is not None and (info.method, info.token, info.base_model) == ("full", "zqfull", "tiny")
    assert info.settings["lr"] == 1e-3

    params = GenerationParams(prompt="red disc, zqfull", seed=0, steps=2)
    [base] = painter.generate(params)
    [tuned] = Painter.load("zqfull", home=home).generate(params)  # --model NAME finds <home>/models/NAME
    [by_path] = Painter.load(str(folder), home=home).generate(params)
    assert tuned.image.tobytes() == by_path.image.tobytes() != base.image.tobytes()

    with pytest.raises(FinetuneError, match="already exists"):  # never over an existing folder
        finetune(config(home, pictures, run_dir=home / "again"), progress=False)


def test_full_refuses_a_large_base_before_loading_it(home: Path, pictures: Path, tmp_path: Path) -> None:
    count = FULL_MAX_UNET_BYTES // 2 + 1  # one parameter over the bound (fp16)
    entry = {"model.diffusion_model.w": {"dtype": "F16", "shape": [count], "data_offsets": [0, 2 * count]}}
    header = json.dumps(entry).encode()
    big = tmp_path / "big.safetensors"
    with big.open("wb") as handle:  # a sparse file: its header is real, its data takes no disk
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 2 * count)
    assert unet_bytes(big) == 2 * count
    with pytest.raises(FinetuneError, match=r"big.safetensors has 1.5 GB of U-Net weights"):
        plan(config(home, pictures, base=str(big)))
    plan(config(home, pictures, base=str(big), method=Method.LORA))  # a LoRA on it is fine
    small = unet_bytes(home / "models" / "tiny")
    assert small is not None and 0 < small < 1_000_000
