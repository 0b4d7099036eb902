"""Fixtures for the explain tests: a tiny SD 1.x Painter in memory and the same model saved as a folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.core.painter import Painter
from keypaint.models.loaded import ModelKind
from keypaint.models.tiny import tiny_model, tiny_pipeline


@pytest.fixture(scope="package", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models are hundreds of tiny ops; on a shared 2-core machine thread hand-offs cost more than
    they save (a 10 ms step took seconds), so these tests run single-threaded and restore the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def painter() -> Painter:
    """A Painter of its own per test module (generating swaps the pipeline's scheduler)."""
    return Painter(tiny_model(ModelKind.SD1))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("explain-models") / "tiny"
    tiny_pipeline(ModelKind.SD1).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def picture() -> Image.Image:
    """A 64 px test picture with structure: a colour ramp and a dark square."""
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    rgb = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 90, np.uint8)],
                   axis=-1)
    rgb[20:40, 20:40] = 10
    return Image.fromarray(rgb)
