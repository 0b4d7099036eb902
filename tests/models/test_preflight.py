"""A model is checked in milliseconds before it is hashed or read: size limit first, then its header.

Huge files are sparse (`os.truncate`): they take no disk and, as long as nothing reads them, no time.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model
from keypaint.models.preflight import DEFAULT_MAX_MODEL_GB, check_model, max_model_bytes

from .conftest import TinyFiles

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def sparse_checkpoint(path: Path, data_bytes: int, *, file_bytes: int | None = None) -> Path:
    """A file whose header is consistent with `data_bytes` of tensor data (one huge F32 tensor beside a
    real-looking SD 1.x conv_in), made sparse at `file_bytes` (default: exactly what the header claims)."""
    conv_in = 320 * 4 * 3 * 3 * 4
    big = data_bytes - conv_in
    header = {
        CONV_IN: {"dtype": "F32", "shape": [320, 4, 3, 3], "data_offsets": [0, conv_in]},
        "model.diffusion_model.huge": {"dtype": "F32", "shape": [big // 4],
                                       "data_offsets": [conv_in, data_bytes]},
        "cond_stage_model.transformer.text_model.embeddings.position_ids": {
            "dtype": "I64", "shape": [0], "data_offsets": [data_bytes, data_bytes]},
    }
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    os.truncate(path, 8 + len(blob) + (data_bytes if file_bytes is None else file_bytes))
    return path


def refused(call: Callable[[], object], match: str, home: Path) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelError, match=match) as err:
        call()
    assert time.perf_counter() - start < 1.0, "the check read the file"
    assert not (home / "cache" / "hashes.json").exists(), "the file was hashed before it was checked"
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_terabyte_file_is_refused_by_its_size(tmp_path: Path, home: Path) -> None:
    path = sparse_checkpoint(tmp_path / "big.safetensors", 10**12)
    read_safetensors_header(path)  # a consistent header: only the size gives it away
    message = refused(lambda: load_model(path, home=home), "big.safetensors: 1,000.0 GB is more than", home)
    assert f"{DEFAULT_MAX_MODEL_GB:,.1f} GB allowed" in message and "--max-model-gb" in message


def test_a_truncated_file_is_refused_before_it_is_hashed(tmp_path: Path, home: Path) -> None:
    """4 GB claimed, 2 GB there: the header says so at once (this used to hash the 2 GB first)."""
    path = sparse_checkpoint(tmp_path / "cut.safetensors", 4 * 10**9, file_bytes=2 * 10**9)
    refused(lambda: load_model(path, home=home), "cut.safetensors.*truncated", home)


def test_the_limit_is_configurable(tiny_files: Callable[..., TinyFiles], home: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    single = tiny_files(ModelKind.SD1).single
    size = single.stat().st_size
    refused(lambda: load_model(single, home=home, max_bytes=size - 1), "GB is more than", home)
    monkeypatch.setenv("KEYPAINT_MAX_MODEL_GB", str((size - 1) / 1e9))
    assert max_model_bytes() == size - 1
    refused(lambda: check_model(single, home=home), "GB is more than", home)
    monkeypatch.setenv("KEYPAINT_MAX_MODEL_GB", "lots")
    with pytest.raises(ModelError, match="KEYPAINT_MAX_MODEL_GB must be a number"):
        check_model(single, home=home)
    monkeypatch.delenv("KEYPAINT_MAX_MODEL_GB")
    checked = check_model(single, home=home)
    assert checked is not None and checked.detected is not None and checked.detected.kind is ModelKind.SD1


def test_a_folder_counts_its_weights_and_checks_their_headers(tiny_files: Callable[..., TinyFiles],
                                                              tmp_path: Path, home: Path) -> None:
    source = tiny_files(ModelKind.SD1).folder
    folder = tmp_path / "folder"
    for file in source.rglob("*"):
        if file.is_file():
            (folder / file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (folder / file.relative_to(source)).write_bytes(file.read_bytes())
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    with pytest.raises(ModelError, match="GB is more than"):
        check_model(folder, home=home, max_bytes=total // 2)
    unet = next((folder / "unet").glob("*.safetensors"))
    unet.write_bytes(unet.read_bytes()[:-100])
    refused(lambda: load_model(folder, home=home), "diffusion_pytorch_model.safetensors.*truncated", home)
