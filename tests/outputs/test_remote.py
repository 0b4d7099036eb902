"""Pictures saved through fsspec (`serve --out URL`): numbered, never replaced, read back; bad locations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keypaint.core.painter import GeneratedImage, Painter
from keypaint.core.params import GenerationParams
from keypaint.errors import OutputError
from keypaint.outputs.metadata import read_metadata
from keypaint.outputs.remote import RemoteFolder, is_url

DAY = datetime(2026, 1, 2)


@pytest.fixture(scope="module")
def picture(tiny_sd1: Any) -> GeneratedImage:
    [result] = Painter(tiny_sd1).generate(GenerationParams(prompt="red fox", seed=5, steps=2, width=64,
                                                           height=64))
    return result


def test_saves_are_numbered_and_never_replace_a_file(picture: GeneratedImage, tmp_path: Path) -> None:
    folder = tmp_path / "bucket" / "2026-01-02"
    folder.mkdir(parents=True)
    (folder / "00000-5.png").write_bytes(b"someone else's picture")
    remote = RemoteFolder(f"file://{tmp_path}/bucket")

    with ThreadPoolExecutor(4) as pool:  # concurrent savers of the same seed get distinct numbers
        saved = list(pool.map(lambda _: remote.save(picture, DAY), range(4)))

    assert sorted(s.relative for s in saved) == [f"2026-01-02/0000{i}-5.png" for i in range(1, 5)]
    assert (folder / "00000-5.png").read_bytes() == b"someone else's picture"
    assert sorted(p.name for p in folder.iterdir()) == [f"0000{i}-5.png" for i in range(5)]  # no claims left
    data = saved[0].read_bytes()
    assert remote.read(saved[0].relative) == data == (tmp_path / "bucket" / saved[0].relative).read_bytes()
    assert read_metadata(tmp_path / "bucket" / saved[0].relative).infotext.startswith("red fox")
    assert remote.read("2026-01-02/99999-5.png") is None


def test_memory_location_in_one_process(picture: GeneratedImage) -> None:
    remote = RemoteFolder("memory://keypaint-test-remote/out")
    remote.check_writable()
    first, second = remote.save(picture, DAY), remote.save(picture, DAY)
    assert (first.relative, second.relative) == ("2026-01-02/00000-5.png", "2026-01-02/00001-5.png")
    assert remote.read(second.relative) == second.read_bytes() and second.name == "00001-5.png"


def test_bad_locations_are_short_errors(tmp_path: Path) -> None:
    assert is_url("s3://bucket/x") and is_url("file:///tmp")
    assert not is_url(str(tmp_path)) and not is_url("C:/x")
    with pytest.raises(OutputError, match="nosuchprotocol"):
        RemoteFolder("nosuchprotocol://bucket/x")
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(OutputError, match="cannot write to output location"):
        RemoteFolder(f"file://{blocker}/inside").check_writable()
