"""Models by name in KEYPAINT_HOME, the listing, the hash cache, a separate VAE and the built-in model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from keypaint.errors import ModelError
from keypaint.models.hashing import file_sha256
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model
from keypaint.models.registry import keypaint_home, list_models

from .conftest import TinyFiles
from .ldm_layout import vae_to_ldm


def test_home_from_environment(home: Path) -> None:
    assert keypaint_home() == home


def test_model_by_name(tiny_files: Callable[..., TinyFiles], home: Path) -> None:
    tiny = tiny_files(ModelKind.SDXL)
    shutil.copy(tiny.single, home / "models" / "my-xl.safetensors")
    shutil.copytree(tiny.folder, home / "models" / "my-folder")
    assert load_model("my-xl", config_dir=tiny.folder).name == "my-xl"
    assert load_model("my-xl.safetensors", config_dir=tiny.folder).kind is ModelKind.SDXL
    assert load_model("my-folder").kind is ModelKind.SDXL


def test_unknown_name_lists_what_is_there(tiny_files: Callable[..., TinyFiles], home: Path) -> None:
    shutil.copy(tiny_files(ModelKind.SD1).single, home / "models" / "one.safetensors")
    with pytest.raises(ModelError, match=r"unknown model 'two'.*one"):
        load_model("two")


def test_list_models(tiny_files: Callable[..., TinyFiles], home: Path) -> None:
    models = home / "models"
    shutil.copy(tiny_files(ModelKind.SD2, True).single, models / "sd2-inpaint.safetensors")
    shutil.copytree(tiny_files(ModelKind.SD1).folder, models / "sd1-folder")
    torch.save({"w": torch.zeros(1)}, models / "old.ckpt")
    (models / "broken.safetensors").write_bytes(b"\0" * 4)
    (models / "notes.txt").write_text("not a model")

    entries = {e.name: e for e in list_models() if e.format != "builtin"}
    assert set(entries) == {"sd2-inpaint", "sd1-folder", "old", "broken"}
    assert (entries["sd2-inpaint"].format, entries["sd2-inpaint"].kind) == ("safetensors", ModelKind.SD2)
    assert entries["sd2-inpaint"].inpainting is True
    assert entries["sd2-inpaint"].size == (models / "sd2-inpaint.safetensors").stat().st_size
    assert (entries["sd1-folder"].format, entries["sd1-folder"].kind) == ("diffusers", ModelKind.SD1)
    assert entries["sd1-folder"].size > 0
    assert (entries["old"].format, entries["old"].kind) == ("pickle", None)
    assert entries["broken"].kind is None


def test_hash_is_cached_by_path_size_and_mtime(tmp_path: Path, home: Path) -> None:
    import hashlib
    import os

    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    assert file_sha256(path) == expected
    cache = json.loads((home / "cache" / "hashes.json").read_text())
    assert list(cache.values()) == [expected]
    # A stale cache entry would be used for an unchanged key...
    key = next(iter(cache))
    (home / "cache" / "hashes.json").write_text(json.dumps({key: "cached"}))
    assert file_sha256(path) == "cached"
    # ...but touching the file changes the key.
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) == expected


def test_separate_vae_file(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    tiny = tiny_files(ModelKind.SD1)
    other = tiny.pipe.vae  # same architecture; the file gets shifted weights
    other_state = {k: v + 1 for k, v in other.state_dict().items()}
    vae_file = tmp_path / "vae-ft.safetensors"
    save_file({k: v.contiguous() for k, v in vae_to_ldm(other_state, other.config).items()}, str(vae_file))

    model = load_model(tiny.single, config_dir=tiny.folder, vae=vae_file)
    got = model.pipe.vae.state_dict()
    assert all(torch.equal(got[k], other_state[k]) for k in other_state)
    assert model.pipe.vae.config.scaling_factor == tiny.pipe.vae.config.scaling_factor
    assert model.pipe.components["vae"] is model.pipe.vae


def test_separate_vae_folder(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    tiny = tiny_files(ModelKind.SD1)
    other = tiny_files(ModelKind.SD2)
    model = load_model(tiny.folder, vae=other.folder / "vae")
    assert all(torch.equal(a, b) for a, b in zip(model.pipe.vae.state_dict().values(),
                                                 other.pipe.vae.state_dict().values(), strict=True))


def test_vae_that_is_not_a_vae(tiny_files: Callable[..., TinyFiles], tmp_path: Path) -> None:
    tiny = tiny_files(ModelKind.SD1)
    bogus = tmp_path / "bogus.safetensors"
    save_file({"x": torch.zeros(1)}, str(bogus))
    with pytest.raises(ModelError, match=r"bogus\.safetensors: not a VAE"):
        load_model(tiny.single, config_dir=tiny.folder, vae=bogus)


@pytest.mark.parametrize("spec", [None, "builtin", "keypaint-emoji"])
def test_builtin_spec(spec: str | None) -> None:
    """The built-in model loads when it is handed to the loader, and fails with a clear error when not."""
    from keypaint.builtin import MODEL

    assert load_model(spec, builtin=MODEL).kind is ModelKind.KEYPAINT
    with pytest.raises(ModelError, match="no built-in model was handed to the loader"):
        load_model(spec)
