"""The built-in model from its frozen bundle: same pictures as the CPU fast path, without PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from keypaint.builtin import MODEL
from keypaint.core.hires import HiresOptions
from keypaint.core.onnx_coldstart.bundle import MANIFEST
from keypaint.core.onnx_coldstart.record import BundleRecorder
from keypaint.core.painter import GeneratedImage, Painter, StepEvent
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import Sampler
from keypaint.core.speed import EXACT_TOLERANCE, SpeedOptions
from keypaint.errors import InvalidParams

BUILTIN = MODEL  # core is handed the built-in model
PARAMS = GenerationParams(
    prompt="red apple, (noto style:1.2)", negative_prompt="blurry", steps=2, seed=5, width=64, height=64,
    batch_size=2,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speed-cache")


def options(cache: Path) -> SpeedOptions:
    return SpeedOptions(fast=True, frozen=True, cache_dir=cache, threads=1)


@pytest.fixture(scope="module")
def first_run(cache: Path) -> list[GeneratedImage]:
    """A fast run with no bundle yet: it loads the model, paints, and leaves the bundle."""
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    assert painter.frozen is None and painter.loaded
    return painter.generate(PARAMS)


def pixels(result: GeneratedImage) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


def test_a_fast_run_leaves_a_bundle(cache: Path, first_run: list[GeneratedImage]) -> None:
    [folder] = cache.glob("frozen-*")
    manifest = json.loads((folder / MANIFEST).read_text())
    assert f"{Sampler.DPMPP_2M_KARRAS.value}|2" in manifest["plans"]
    assert manifest["unet"] and manifest["vae"] and manifest["sha256"] == first_run[0].model_hash
    assert (folder / "text-encoder" / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()


def test_a_new_painter_paints_the_same_pictures_from_the_bundle(
    cache: Path, first_run: list[GeneratedImage]
) -> None:
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    assert painter.frozen is not None and not painter.loaded
    events: list[StepEvent] = []
    results = painter.generate(PARAMS, on_step=events.append)
    assert not painter.loaded  # nothing needed the full model
    assert [r.seed for r in results] == [r.seed for r in first_run] == [5, 6]
    for frozen, full in zip(results, first_run, strict=True):
        assert np.abs(pixels(frozen) - pixels(full)).max() <= EXACT_TOLERANCE["cpu"]
        assert frozen.params == full.params and frozen.extra == full.extra
        assert (frozen.model_name, frozen.model_hash) == (full.model_name, full.model_hash)
    assert [(e.step, e.steps, e.batch) for e in events] == [(1, 2, 0), (2, 2, 0)]
    assert events[-1].latents.shape == (2, 4, 8, 8)


def test_the_bundle_finds_keywords_by_meaning_as_the_full_path_does(
    cache: Path, first_run: list[GeneratedImage]
) -> None:
    """The exported text encoder embeds keywords for meaning matching; no PyTorch model is loaded."""
    from keypaint.builtin import load_builtin

    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    assert painter.frozen is not None
    frozen = painter.frozen.expand("cheeseburger, spacecraft, noto style")
    full = load_builtin().expand("cheeseburger, spacecraft, noto style")
    assert not painter.loaded and frozen.prompt == full.prompt
    assert frozen.note == full.note == "cheeseburger -> hamburger; spacecraft -> satellite"
    for a, b in zip(frozen.matches, full.matches, strict=True):
        assert abs(a.score - b.score) < 1e-3


def test_what_the_bundle_does_not_cover_loads_the_model(cache: Path, first_run: list[GeneratedImage]) -> None:
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    [result] = painter.generate(replace(PARAMS, sampler=Sampler.EULER_A, batch_size=1))
    assert painter.loaded and result.image.size == (64, 64)


def test_the_bundle_declines_control_units_for_the_diffusers_engine(
    cache: Path, first_run: list[GeneratedImage]
) -> None:
    from PIL import Image

    from keypaint.core.control import ControlUnit

    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    [engine] = painter.engines
    assert engine.prepare(PARAMS) is not None  # the bundle covers the request ...
    steered = replace(PARAMS, control_units=(ControlUnit("any", image=Image.new("RGB", (64, 64))),))
    assert engine.prepare(steered) is None  # ... but not with a ControlNet: the Painter asks the full model
    assert not painter.loaded


def test_hires_is_declined_by_the_bundle_and_painted_by_the_model(cache: Path, first_run: list[GeneratedImage]
                                                                  ) -> None:
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    assert painter.frozen is not None and not painter.loaded
    hires = HiresOptions(scale=2, strength=0.5)
    [result] = painter.generate(replace(PARAMS, batch_size=1, width=32, height=32, hires=hires))
    assert painter.loaded and result.image.size == (64, 64)


def test_the_recorder_writes_only_what_is_new(cache: Path, first_run: list[GeneratedImage]) -> None:
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=SpeedOptions(fast=True, cache_dir=cache))
    painter.generate(replace(PARAMS, batch_size=1))
    assert BUILTIN is not None
    recorder = BundleRecorder(cache, painter.model, BUILTIN.text_encoder())
    config = painter.base_scheduler_config
    recorder.record(painter.speed, Sampler.DPMPP_2M_KARRAS, 2, config)  # adds this run's graphs if new
    assert not recorder.record(painter.speed, Sampler.DPMPP_2M_KARRAS, 2, config)
    assert recorder.record(painter.speed, Sampler.EULER, 3, config)  # a new plan
    manifest = recorder.folder / MANIFEST
    stamp = manifest.stat().st_mtime_ns
    assert not recorder.record(painter.speed, Sampler.EULER, 3, config)
    assert manifest.stat().st_mtime_ns == stamp
    assert f"{Sampler.EULER.value}|3" in json.loads(manifest.read_text())["plans"]


def test_a_damaged_bundle_falls_back_to_the_full_model(
    tmp_path: Path, cache: Path, first_run: list[GeneratedImage]
) -> None:
    import shutil

    [folder] = cache.glob("frozen-*")
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy, symlinks=True)
    (copy / folder.name / MANIFEST).write_text("{not json")
    assert Painter.load(device="cpu", builtin=BUILTIN, speed=options(copy)).loaded
    shutil.rmtree(copy / folder.name)
    shutil.copytree(folder, copy / folder.name)
    (copy / folder.name / "text-encoder" / "model.onnx").write_bytes(b"damaged")
    painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(copy))
    assert painter.frozen is not None and not painter.loaded
    [result] = painter.generate(replace(PARAMS, batch_size=1))
    assert painter.loaded and result.image.size == (64, 64)


def test_without_frozen_or_fast_the_model_loads(cache: Path, first_run: list[GeneratedImage]) -> None:
    assert Painter.load(device="cpu", builtin=BUILTIN, speed=SpeedOptions(fast=True, cache_dir=cache)).loaded
    with pytest.raises(InvalidParams, match="fp32"):  # the bundle is fp32: bf16 goes to the full path's check
        Painter.load(device="cpu", dtype="bf16", builtin=BUILTIN, speed=options(cache))


def test_a_fresh_process_paints_and_saves_without_pytorch(
    cache: Path, first_run: list[GeneratedImage], tmp_path: Path
) -> None:
    script = f"""
import sys
from pathlib import Path
import numpy as np
from keypaint.builtin import MODEL
from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams
from keypaint.core.speed.options import SpeedOptions
from keypaint.outputs.results import save_generated
from keypaint.provenance.settings import ProvenanceSettings
speed = SpeedOptions(fast=True, frozen=True, cache_dir=Path({str(cache)!r}))
painter = Painter.load(device="cpu", speed=speed, builtin=MODEL)
params = GenerationParams(prompt={PARAMS.prompt!r}, negative_prompt={PARAMS.negative_prompt!r}, steps=2,
                          seed=5, width=64, height=64, batch_size=2)
first = painter.generate(params)[0]
np.save(Path({str(tmp_path)!r}) / "first.npy", np.asarray(first.image))
save_generated(first, Path({str(tmp_path)!r}), provenance=ProvenanceSettings())
heavy = [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]
print("heavy:", heavy, "loaded:", painter.loaded)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: [] loaded: False" in out.stdout
    assert len(list(tmp_path.glob("*.png"))) == 1
    painted = np.load(tmp_path / "first.npy").astype(np.int16)
    assert np.abs(painted - pixels(first_run[0])).max() <= EXACT_TOLERANCE["cpu"]


def test_both_engines_paint_a_request_through_one_interface(
    cache: Path, first_run: list[GeneratedImage]
) -> None:
    """The Painter picks an engine and runs its batches without knowing which one it is."""
    import inspect

    from keypaint.core.diffusers_engine import DiffusersEngine
    from keypaint.core.engine import Engine, Job
    from keypaint.core.onnx_coldstart.engine import ColdStartEngine

    frozen_painter = Painter.load(device="cpu", builtin=BUILTIN, speed=options(cache))
    full_speed = SpeedOptions(fast=True, cache_dir=cache, threads=1)
    full_painter = Painter.load(device="cpu", builtin=BUILTIN, speed=full_speed)
    [frozen] = frozen_painter.engines
    [full] = full_painter.engines
    assert isinstance(frozen, ColdStartEngine) and isinstance(full, DiffusersEngine)
    for engine, painter in ((frozen, frozen_painter), (full, full_painter)):
        assert isinstance(engine, Engine)
        job = engine.prepare(painter.resolve(PARAMS))
        assert isinstance(job, Job)
        steps: list[tuple[int, int]] = []
        images = engine.run_batch(job, [5, 6], lambda *report: steps.append(report[:2]), None)  # noqa: B023
        assert steps == [(1, 2), (2, 2)] and (engine.device, engine.dtype) == ("cpu", "fp32")
        for image, expected in zip(images, first_run, strict=True):
            difference = np.asarray(image, dtype=np.int16) - pixels(expected)
            assert np.abs(difference).max() <= EXACT_TOLERANCE["cpu"]
    assert not frozen_painter.loaded
    assert "frozen" not in inspect.getsource(Painter.generate) + inspect.getsource(Painter._prepare)
