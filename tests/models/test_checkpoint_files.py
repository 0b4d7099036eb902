"""Hostile and broken files fail fast with one-line errors; pickles never run code."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from keypaint.errors import ModelError
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model
from keypaint.models.registry import keypaint_home

from .conftest import TinyFiles
from .ldm_layout import pipeline_to_ldm


class WritesMarker:
    """Unpickling this would create a file: the stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def raw_safetensors(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> Path:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


def one_line_error(call: Callable[[], object], match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelError, match=match) as err:
        call()
    assert time.perf_counter() - start < 2.0
    assert "\n" not in str(err.value)
    return str(err.value)


def test_pickle_refused_without_flag(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": WritesMarker(marker)}, ckpt)
    message = one_line_error(lambda: load_model(ckpt), "--allow-pickle")
    assert "evil.ckpt" in message
    assert not marker.exists()


def test_pickle_with_code_refused_even_with_flag(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": WritesMarker(marker)}, ckpt)
    message = one_line_error(lambda: load_model(ckpt, allow_pickle=True),
                             "evil.ckpt: this pickle holds more than weights")
    assert "GLOBAL exec" in message  # what the file carries, not PyTorch's advice on loading it anyway
    assert "weights_only" not in message and "trust the source" not in message and "\x1b" not in message
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_every_pickle_suffix_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    torch.save({"w": torch.zeros(1)}, path)
    one_line_error(lambda: load_model(path), "pickle")


def test_benign_pickle_loads_with_flag(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    tiny = tiny_files(ModelKind.SD1)
    ckpt = tmp_path / "benign.ckpt"
    torch.save({"state_dict": pipeline_to_ldm(tiny.pipe, ModelKind.SD1), "global_step": 470000}, ckpt)
    model = load_model(ckpt, allow_pickle=True, config_dir=tiny.folder)
    assert (model.name, model.kind) == ("benign", ModelKind.SD1)
    want, got = tiny.pipe.unet.state_dict(), model.pipe.unet.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
    scratch = keypaint_home() / "cache" / "tmp"
    assert not list(scratch.rglob("*.safetensors"))  # the converted copy is deleted after loading


def test_pickled_diffusers_folder_refused(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    tiny = tiny_files(ModelKind.SD1)
    folder = tmp_path / "pickled"
    tiny.pipe.save_pretrained(folder, safe_serialization=False)
    one_line_error(lambda: load_model(folder), "--allow-pickle")


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01\x02")
    one_line_error(lambda: load_model(path), "short.safetensors: not a valid .safetensors file")


def test_header_longer_than_file(tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "cut.safetensors", {"a": {}}, length=10_000)
    one_line_error(lambda: read_safetensors_header(path), "cut.safetensors.*header claims 10000 bytes")


def test_absurd_header_length_is_not_allocated(tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "huge.safetensors", b"{}", length=2**62)
    one_line_error(lambda: load_model(path), "huge.safetensors.*more than")


def test_corrupt_header(tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "garbage.safetensors", b"\xff\xfe not json at all")
    one_line_error(lambda: load_model(path), "garbage.safetensors.*not JSON")


def test_tensor_claiming_huge_size(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 2**64]}}
    path = raw_safetensors(tmp_path / "big.safetensors", header, data=b"\0" * 16)
    one_line_error(lambda: load_model(path), "big.safetensors.*truncated")


def test_truncated_real_file(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    data = tiny_files(ModelKind.SD1).single.read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) - 1000])
    one_line_error(lambda: load_model(path), "truncated.safetensors.*truncated")


def test_offsets_that_do_not_fit_the_shape(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}
    path = raw_safetensors(tmp_path / "odd.safetensors", header, data=b"\0" * 8)
    one_line_error(lambda: read_safetensors_header(path), "does not fit its shape")


def test_not_a_full_model(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2)}, str(path))
    one_line_error(lambda: load_model(path), "no Stable Diffusion U-Net")
