"""Original-layout single files and diffusers folders load back to the exact same weights and kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from keypaint.errors import ModelError
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model

from .conftest import TinyFiles

KINDS = (ModelKind.SD1, ModelKind.SD2, ModelKind.SDXL)
CASES = [(kind, inpainting) for kind in KINDS for inpainting in (False, True)]
IDS = [f"{k.value}{'-inpainting' if i else ''}" for k, i in CASES]


def assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module) -> None:
    want, got = expected.state_dict(), actual.state_dict()
    assert want.keys() == got.keys()
    differing = [k for k in want if not torch.equal(want[k], got[k])]
    assert not differing, differing[:5]


def parts(kind: ModelKind) -> list[str]:
    return ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if kind is ModelKind.SDXL else [])


@pytest.mark.parametrize(("kind", "inpainting"), CASES, ids=IDS)
def test_single_file_round_trips(tiny_files: Callable[..., TinyFiles], kind: ModelKind,
                                 inpainting: bool) -> None:
    tiny = tiny_files(kind, inpainting)
    model = load_model(tiny.single, config_dir=tiny.folder)

    assert model.kind is kind
    assert model.inpainting is inpainting
    assert model.name == tiny.single.stem
    assert model.source == tiny.single
    assert model.sha256 is not None and len(model.sha256) == 64
    expected_cls = StableDiffusionXLPipeline if kind is ModelKind.SDXL else StableDiffusionPipeline
    assert type(model.pipe) is expected_cls
    for part in parts(kind):
        assert_same_weights(getattr(tiny.pipe, part), getattr(model.pipe, part))
    assert model.pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize(("kind", "inpainting"), CASES, ids=IDS)
def test_diffusers_folder_loads(tiny_files: Callable[..., TinyFiles], kind: ModelKind,
                                inpainting: bool) -> None:
    tiny = tiny_files(kind, inpainting)
    model = load_model(tiny.folder)

    assert (model.kind, model.inpainting, model.name) == (kind, inpainting, "folder")
    assert getattr(model.pipe, "safety_checker", None) is None
    for part in parts(kind):
        assert_same_weights(getattr(tiny.pipe, part), getattr(model.pipe, part))
    # A folder's hash is that of its U-Net weights file.
    from keypaint.models.hashing import file_sha256

    assert model.sha256 == file_sha256(tiny.folder / "unet" / "diffusion_pytorch_model.safetensors")


def test_inpainting_folder_becomes_text_to_image_pipeline(tiny_files: Callable[..., TinyFiles]) -> None:
    """A folder saved as an inpainting pipeline still loads as a StableDiffusionPipeline with all parts."""
    from diffusers import StableDiffusionInpaintPipeline

    tiny = tiny_files(ModelKind.SD1, True)
    folder = tiny.folder.parent / "inpaint-pipeline"
    StableDiffusionInpaintPipeline(**tiny.pipe.components).save_pretrained(folder)
    model = load_model(folder)
    assert type(model.pipe) is StableDiffusionPipeline
    assert model.inpainting
    assert_same_weights(tiny.pipe.unet, model.pipe.unet)


def test_dtype_is_applied(tiny_files: Callable[..., TinyFiles]) -> None:
    tiny = tiny_files(ModelKind.SD1)
    model = load_model(tiny.single, config_dir=tiny.folder, dtype=torch.bfloat16)
    assert model.pipe.unet.dtype == torch.bfloat16
    assert model.pipe.text_encoder.dtype == torch.bfloat16


def test_config_dir_must_fit_the_checkpoint(tiny_files: Callable[..., TinyFiles]) -> None:
    """An SD 1.x file converted with an inpainting config fails with a one-line error, not a traceback."""
    with pytest.raises(ModelError, match="tiny-sd1") as err:
        load_model(tiny_files(ModelKind.SD1).single, config_dir=tiny_files(ModelKind.SD1, True).folder)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.safetensors")


def test_loading_prints_no_dtype_deprecation(tiny_files: Callable[..., TinyFiles]) -> None:
    """diffusers >= 0.42 warns about `torch_dtype` on every pipeline load; keypaint passes what it wants."""
    import warnings

    tiny = tiny_files(ModelKind.SD1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(tiny.folder, dtype=torch.float32)
        load_model(tiny.single, config_dir=tiny.folder)
    assert not [w for w in caught if "torch_dtype" in str(w.message)], [str(w.message) for w in caught]
