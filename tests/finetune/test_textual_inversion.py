"""Textual inversion and DreamBooth on tiny models: what is trained, what is written, how it is used."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import ModelError
from keypaint.finetune import FinetuneConfig, FinetuneInfo, Method
from keypaint.finetune.textual_inversion import initial_vectors
from keypaint.finetune.train import finetune
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.loader import load_model


def config(home: Path, pictures: Path, **changes: object) -> FinetuneConfig:
    base = FinetuneConfig(
        images=pictures,
        token="zqstyle",
        base="tiny",
        steps=2,
        batch_size=2,
        home=home,
        cpu=True,
        method=Method.TEXTUAL_INVERSION,
        lr=0.05,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_textual_inversion_trains_only_the_new_vectors(home: Path, pictures: Path, tmp_path: Path) -> None:
    out = tmp_path / "zq.safetensors"
    result = finetune(config(home, pictures, out=out, sample_every=2), progress=False)
    tensors = load_file(out)
    assert list(tensors) == ["emb_params"] and tuple(tensors["emb_params"].shape) == (4, 32)
    start = initial_vectors(load_model("tiny", home=home), "style", 4)[0].detach()
    assert not torch.allclose(tensors["emb_params"], start)  # the vectors moved ...
    info = FinetuneInfo.from_header(read_safetensors_header(out).metadata)
    assert info is not None and info.method == "textual-inversion" and info.settings["vectors"] == 4
    assert result.bytes < 10_000
    assert [p.name for p in result.samples] == ["step-000002.png"] and result.samples[0].is_file()

    painter = Painter.load("tiny", home=home)  # ... and the model did not
    plain = painter.generate(GenerationParams(prompt="red disc, zqstyle", seed=2, steps=2))[0]
    used = painter.generate(
        GenerationParams(prompt="red disc, zqstyle", seed=2, steps=2, embeddings=(str(out),))
    )[0]
    unused = painter.generate(GenerationParams(prompt="red disc", seed=2, steps=2, embeddings=(str(out),)))[0]
    assert used.extra["TI hashes"].startswith("zqstyle: ")
    assert np.abs(pixels(used.image) - pixels(plain.image)).max() > 0
    assert np.array_equal(
        pixels(unused.image),
        pixels(painter.generate(GenerationParams(prompt="red disc", seed=2, steps=2))[0].image),
    )  # no trigger word: no effect

    other = Painter.load("tiny-other", home=home)
    with pytest.raises(ModelError, match=r"embedding zq.safetensors was trained on tiny .* tiny-other"):
        other.generate(GenerationParams(prompt="zqstyle", steps=2, embeddings=(str(out),)))


def test_embedding_in_the_home_folder_is_called_by_its_name(home: Path, pictures: Path) -> None:
    result = finetune(config(home, pictures), progress=False)
    assert result.path == home / "embeddings" / "zqstyle.safetensors"
    painter = Painter.load("tiny", home=home)
    [called] = painter.generate(GenerationParams(prompt="red disc, ZQstyle", seed=1, steps=2))
    [plain] = painter.generate(GenerationParams(prompt="red disc", seed=1, steps=2))
    assert called.extra["TI hashes"].startswith("zqstyle: ") and plain.extra == {}


def test_dreambooth_paints_class_pictures_once_and_trains(home: Path, pictures: Path, tmp_path: Path) -> None:
    classes = tmp_path / "class"
    classes.mkdir()
    Image.new("RGB", (64, 64), "white").save(classes / "class-00000.png")  # kept, not overwritten
    before = (classes / "class-00000.png").read_bytes()
    cfg = config(
        home,
        pictures,
        method=Method.DREAMBOOTH,
        lr=1e-2,
        class_prompt="disc",
        class_dir=classes,
        class_images=3,
    )
    result = finetune(cfg, progress=False)
    assert sorted(p.name for p in classes.iterdir()) == [f"class-0000{i}.png" for i in range(3)]
    assert (classes / "class-00000.png").read_bytes() == before
    info = FinetuneInfo.from_header(read_safetensors_header(result.path).metadata)
    assert info is not None and info.method == "dreambooth"
    assert info.settings["class_prompt"] == "disc" and info.settings["class_images"] == 3
