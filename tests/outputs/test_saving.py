"""Saving and reading pictures with real files: numbering, no overwrites, concurrency, metadata."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from datetime import UTC, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, PngImagePlugin

from keypaint.core.params import GenerationParams, LoraRef
from keypaint.core.samplers import Sampler
from keypaint.errors import ImageError, InvalidParams, OutputError
from keypaint.outputs.files import _reserve_and_replace, next_number
from keypaint.outputs.infotext import build_infotext, parse_infotext
from keypaint.outputs.metadata import (
    ImageMetadata,
    params_from_image,
    params_from_metadata,
    read_metadata,
    reproduction_metadata,
)
from keypaint.outputs.saving import check_writable, output_dir, save_image

A1111_INFOTEXT = (
    "(colorful:1.3),\ndreamlike fantasy landscape\nNegative prompt: (worst quality:1.4)\n"
    "Steps: 40, Sampler: DPM++ 2M Karras, CFG scale: 12, Seed: 2416682767, Size: 640x512, "
    'Model hash: 0f0eaaa61e, Lora hashes: "a: 1, b: 2", Version: v1.9.4'
)


def _picture(colour: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (16, 16), colour)


def _save(folder: Path, seed: int, tag: str = "") -> Path:
    return save_image(_picture(), folder, infotext=f"cat\nSteps: 1, Seed: {seed}, Size: 16x16",
                      metadata={"seed": seed, "tag": tag}, stem_hint=str(seed))


def _not_writable(tmp_path: Path) -> Path:
    """A path nobody can create, root included: it lies under a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "outputs"


# --- folders -------------------------------------------------------------------------------------------


def test_output_dir_is_dated_and_created(tmp_path: Path) -> None:
    folder = output_dir(tmp_path / "out", datetime(2024, 3, 9, 23, 59))
    assert folder == tmp_path / "out" / "2024-03-09"
    assert folder.is_dir()
    assert output_dir(tmp_path / "out", datetime(2024, 3, 9, 1, 0)) == folder  # exists: fine


def test_unwritable_base_fails_up_front_with_one_line(tmp_path: Path) -> None:
    base = _not_writable(tmp_path)
    with pytest.raises(OutputError) as err:
        check_writable(base)
    assert str(base) in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(OutputError):
        output_dir(base)
    with pytest.raises(OutputError):
        save_image(_picture(), base, infotext="x", metadata={})


def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (covered by the path under a file)")
        with pytest.raises(OutputError, match="cannot write"):
            check_writable(folder)
        with pytest.raises(OutputError):
            save_image(_picture(), folder, infotext="x", metadata={})
    finally:
        folder.chmod(0o700)


def test_check_writable_creates_the_base_and_leaves_nothing(tmp_path: Path) -> None:
    base = tmp_path / "new" / "outputs"
    check_writable(base)
    assert base.is_dir()
    assert list(base.iterdir()) == []


# --- numbering and never overwriting -------------------------------------------------------------------


def test_numbering_starts_at_zero_and_counts_up(tmp_path: Path) -> None:
    assert [_save(tmp_path, s).name for s in (42, 42, 7)] == ["00000-42.png", "00001-42.png", "00002-7.png"]
    assert save_image(_picture(), tmp_path, infotext="x", metadata={}).name == "00003.png"


def test_next_number_follows_the_highest_and_existing_files_stay_byte_identical(tmp_path: Path) -> None:
    existing = {
        "00007-123.png": b"someone else's picture",
        "00002-9.png": b"older",
        "notes.txt": b"hello",
        "grid-0099.png": b"not numbered the A1111 way",
        "12345abc.png": b"not a number either",
    }
    for name, content in existing.items():
        (tmp_path / name).write_bytes(content)
    assert next_number(tmp_path) == 8
    assert _save(tmp_path, 5).name == "00008-5.png"
    for name, content in existing.items():
        assert (tmp_path / name).read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_a_taken_name_is_never_replaced(tmp_path: Path) -> None:
    tmp = tmp_path / ".keypaint-x.png.tmp"
    tmp.write_bytes(b"new")
    final = tmp_path / "00000-1.png"
    final.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        os.link(tmp, final)  # what save_image relies on
    with pytest.raises(FileExistsError):
        _reserve_and_replace(tmp, final)  # the fallback for file systems without hard links
    assert final.read_bytes() == b"old"
    _reserve_and_replace(tmp, tmp_path / "00001-1.png")
    assert (tmp_path / "00001-1.png").read_bytes() == b"new"
    assert not tmp.exists()


def test_stem_hint_cannot_leave_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "day"
    folder.mkdir()
    path = save_image(_picture(), folder, infotext="x", metadata={}, stem_hint="../../etc/passwd")
    assert path.parent == folder
    assert path.name.startswith("00000-") and "/" not in path.name[6:]


def test_concurrent_threads_get_distinct_files(tmp_path: Path) -> None:
    workers, each = 8, 5
    barrier = threading.Barrier(workers)
    saved: list[Path] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(each):
                saved.append(_save(tmp_path, worker * 100 + i, tag=f"t{worker}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _assert_all_distinct(tmp_path, saved, workers * each)


def _process_worker(folder: str, worker: int, each: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put([str(_save(Path(folder), worker * 100 + i, tag=f"p{worker}")) for i in range(each)])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_processes_get_distinct_files(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers, each = 4, 6
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_process_worker, args=(str(tmp_path), w, each, barrier, results))
                 for w in range(workers)]
    for process in processes:
        process.start()
    saved = [Path(p) for _ in processes for p in results.get(timeout=60)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    _assert_all_distinct(tmp_path, saved, workers * each)


def _assert_all_distinct(folder: Path, saved: list[Path], count: int) -> None:
    assert len(set(saved)) == count
    files = sorted(folder.iterdir())
    assert files == sorted(saved)  # nothing else: no temp files left behind
    assert sorted(int(p.name[:5]) for p in files) == list(range(count))
    for path in files:  # every file is whole and holds its own metadata
        seed = read_metadata(path).data["seed"]  # type: ignore[index]
        assert path.name.endswith(f"-{seed}.png")


# --- metadata ------------------------------------------------------------------------------------------


def _metadata_for(params: GenerationParams, seed: int) -> dict[str, Any]:
    return reproduction_metadata(params, seed=seed, batch_index=1, width=512, height=768,
                                 model_name="tiny-sd", model_sha256="ab" * 32, device=torch.device("cpu"),
                                 dtype=torch.float16, created=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))


def test_metadata_round_trip(tmp_path: Path) -> None:
    params = GenerationParams(prompt="猫, red apple 🍎\nsecond line", negative_prompt='blurry, "bad"',
                              steps=12, guidance_scale=5.5, sampler=Sampler.EULER_A, seed=100,
                              width=512, height=768, batch_size=2, expand_keywords=False)
    infotext = build_infotext(params, seed=101, width=512, height=768, model_name="tiny-sd",
                              model_hash="ab" * 32)
    metadata = _metadata_for(params, seed=101)
    path = save_image(_picture(), tmp_path, infotext=infotext, metadata=metadata, stem_hint="101")

    read = read_metadata(path)
    assert read.infotext == infotext
    assert read.data == metadata
    expected = GenerationParams(prompt=params.prompt, negative_prompt=params.negative_prompt, steps=12,
                                guidance_scale=5.5, sampler=Sampler.EULER_A, seed=101, width=512, height=768,
                                expand_keywords=False)
    assert params_from_metadata(read) == expected
    assert params_from_metadata(read.data) == expected  # type: ignore[arg-type]
    assert params_from_image(path, steps=3) == GenerationParams(**{**expected.__dict__, "steps": 3})
    assert params_from_metadata(ImageMetadata(infotext=infotext, data=None)) == expected
    with Image.open(path) as image:  # the picture itself is intact
        assert image.convert("RGB").getpixel((0, 0)) == (200, 30, 30)


def test_reproduction_metadata_contents() -> None:
    image = Image.new("RGB", (64, 64))
    params = GenerationParams(prompt="cat", init_image=image, strength=0.3, sampler=Sampler.DPMPP_2M)
    data = reproduction_metadata(params, seed=9, batch_index=0, width=64, height=64, model_name=None,
                                 model_sha256=None, device="cuda:0", dtype="torch.bfloat16",
                                 created=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert data["params"] == {"prompt": "cat", "negative_prompt": "", "steps": 20, "guidance_scale": 7.0,
                              "sampler": "DPM++ 2M", "seed": 9, "width": 64, "height": 64, "strength": 0.3,
                              "mode": "img2img", "expand_keywords": True, "batch_index": 0, "loras": [],
                              "embeddings": [], "control_units": [], "hires": None, "outpaint": None,
                              "flow": {}}
    assert data["model"] == {"name": None, "sha256": None}
    assert set(data["versions"]) == {"keypaint", "torch", "diffusers", "transformers"}
    assert data["versions"]["torch"] == metadata.version("torch")
    assert data["versions"]["keypaint"] == metadata.version("keypaint")
    assert (data["device"], data["dtype"]) == ("cuda:0", "bfloat16")
    assert data["created"] == "2024-05-01T12:00:00+00:00"
    assert json.loads(json.dumps(data)) == data
    now = reproduction_metadata(params, seed=9, batch_index=0, width=64, height=64, model_name=None,
                                model_sha256=None, device="cpu", dtype=torch.float32)
    assert datetime.fromisoformat(now["created"]).utcoffset() == timedelta(0)
    assert now["dtype"] == "float32"


def test_loras_and_embeddings_are_recorded_by_name() -> None:
    loras = (LoraRef("/private/dir/zqstyle.safetensors", 0.8), LoraRef("keypaint-lcm"))
    embeddings = ("zqword", "/elsewhere/zqother.safetensors")
    params = GenerationParams(prompt="cat face, zqword", loras=loras, embeddings=embeddings)
    data = _metadata_for(params, seed=3)
    assert data["params"]["loras"] == [["zqstyle", 0.8], ["keypaint-lcm", 1.0]]
    assert data["params"]["embeddings"] == ["zqword", "zqother"]
    assert "/private" not in json.dumps(data)
    again = params_from_metadata(json.loads(json.dumps(data)))
    assert again.loras == (LoraRef("zqstyle", 0.8), LoraRef("keypaint-lcm", 1.0))
    assert again.embeddings == ("zqword", "zqother")
    assert params_from_metadata(data, loras=()).loras == ()  # what is given wins
    for bad in (["zqstyle", "x"], ["zqstyle"], "zqstyle", [1, 0.5], ["zqstyle", True]):
        broken = {**data, "params": {**data["params"], "loras": [bad]}}
        with pytest.raises(InvalidParams, match="loras"):
            params_from_metadata(broken)
    with pytest.raises(InvalidParams, match="embedding"):
        params_from_metadata({**data, "params": {**data["params"], "embeddings": [3]}})


def test_a1111_png_with_only_parameters(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_INFOTEXT)
    path = tmp_path / "00012-2416682767.png"
    _picture().save(path, pnginfo=info)
    read = read_metadata(path)
    assert read == ImageMetadata(infotext=A1111_INFOTEXT, data=None)
    params = params_from_metadata(read)
    assert (params.sampler, params.seed, params.width, params.height) == (Sampler.DPMPP_2M_KARRAS, 2416682767,
                                                                          640, 512)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le"])
@pytest.mark.parametrize("prompt", ["(colorful:1.3),\ndreamlike", "猫と林檎, 赤い"])
def test_exif_user_comment_is_read(tmp_path: Path, fmt: str, encoding: str, prompt: str) -> None:
    infotext = A1111_INFOTEXT.replace("(colorful:1.3),\ndreamlike", prompt)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + infotext.encode(encoding)  # A1111 writes UTF-16-BE
    path = tmp_path / f"picture.{fmt.lower()}"
    _picture().save(path, format=fmt, exif=exif)
    read = read_metadata(path)
    assert read == ImageMetadata(infotext=infotext, data=None)
    assert parse_infotext(read.infotext or "")["Lora hashes"] == "a: 1, b: 2"


def test_pictures_without_metadata(tmp_path: Path) -> None:
    for name in ("plain.png", "plain.jpg"):
        _picture().save(tmp_path / name)
        assert read_metadata(tmp_path / name) == ImageMetadata(infotext=None, data=None)
    with pytest.raises(ImageError, match="no generation parameters"):
        params_from_image(tmp_path / "plain.png")


def test_unreadable_files_raise_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such image"):
        read_metadata(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageError, match=r"notes\.png is not a picture"):
        read_metadata(tmp_path / "notes.png")
    with pytest.raises(ImageError):
        read_metadata(tmp_path)  # a folder
    good = _save(tmp_path, 1)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageError):
        read_metadata(tmp_path / "cut.png")


def test_broken_keypaint_chunk_is_an_image_error(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("keypaint", "{not json")
    _picture().save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(ImageError, match="not valid JSON"):
        read_metadata(tmp_path / "bad.png")


@pytest.mark.parametrize(("change", "field"), [
    ({"format": "other/9"}, "metadata"),
    ({"params": None}, "metadata"),
    ({"params": {"steps": "20"}}, "steps"),
    ({"params": {"steps": True}}, "steps"),
    ({"params": {"sampler": "Nope"}}, "sampler"),
    ({"params": {"width": 51.2}}, "width"),
    ({"params": {"prompt": None}}, "prompt"),
])
def test_bad_recorded_values_name_the_field(change: dict[str, Any], field: str) -> None:
    data = _metadata_for(GenerationParams(prompt="cat"), seed=1)
    for key, value in change.items():
        if isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    with pytest.raises(InvalidParams) as err:
        params_from_metadata(data)
    assert err.value.field == field


def test_missing_recorded_value_is_named() -> None:
    data = _metadata_for(GenerationParams(prompt="cat"), seed=1)
    del data["params"]["seed"]
    with pytest.raises(InvalidParams) as err:
        params_from_metadata(data)
    assert err.value.field == "seed"


def test_json_of_pictures_made_before_the_codec_is_still_read() -> None:
    """The `keypaint/1` JSON as earlier versions wrote it (`--from` reads it; later keys are ignored)."""
    old = {"format": "keypaint/1", "params": {
        "prompt": "red apple", "negative_prompt": "", "steps": 12, "guidance_scale": 7, "sampler": "Euler a",
        "seed": 5, "width": 64, "height": 64, "strength": 0.75, "mode": "txt2img", "expand_keywords": True,
        "batch_index": 2, "loras": [["zqstyle", 1]], "embeddings": [], "later_key": "ignored"}}
    assert params_from_metadata(old) == GenerationParams(
        prompt="red apple", steps=12, guidance_scale=7.0, sampler=Sampler.EULER_A, seed=5, width=64,
        height=64, loras=(LoraRef("zqstyle", 1.0),))
    with pytest.raises(InvalidParams, match="steps"):
        params_from_metadata({**old, "params": {**old["params"], "steps": "12"}})
