"""The built-in model: shipped weights load as a standard pipeline; export loads in plain diffusers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline

from keypaint.builtin import NAME, VOCABULARY, WEIGHTS_DIR, load_builtin, unet_sha256, weights_present
from keypaint.builtin.architecture import SIZES, build_scheduler, build_unet, build_vae
from keypaint.builtin.export import export_model
from keypaint.builtin.text_encoder import CONTEXT_DIM, MAX_TOKENS, load_text_encoder
from keypaint.errors import ModelError, OutputError
from keypaint.keywords.vocabulary import Vocabulary
from keypaint.models.loaded import ModelKind
from keypaint.models.loader import load_model

shipped = pytest.mark.skipif(not weights_present(), reason="built-in weights not trained yet")


def test_text_encoder_is_frozen_minilm_with_a_32_token_window() -> None:
    tokenizer, encoder = load_text_encoder()
    assert tokenizer.model_max_length == MAX_TOKENS == 32
    assert encoder.config.hidden_size == CONTEXT_DIM == 384
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.config.use_attention_mask  # so diffusers' own pipeline masks padding as keypaint does


def test_missing_weights_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="weights are missing"):
        load_builtin(weights=tmp_path)


@shipped
def test_shipped_weights_fit_the_budget() -> None:
    files = [f for part in ("unet", "vae") for f in (WEIGHTS_DIR / part).glob("*.safetensors")]
    assert sum(f.stat().st_size for f in files) <= 35_000_000
    assert all(f.stat().st_size <= 15_000_000 for f in files)
    assert json.loads((WEIGHTS_DIR / "vae" / "config.json").read_text())["latent_channels"] == 4


@shipped
def test_load_builtin_draws_a_red_apple() -> None:
    model = load_builtin()
    assert model.name == NAME and model.kind is ModelKind.KEYPAINT
    assert model.sha256 == unet_sha256() and len(model.sha256) == 64
    assert isinstance(model.pipe, StableDiffusionPipeline) and model.native_size == 128
    image = model.pipe("red apple", num_inference_steps=20, generator=torch.Generator().manual_seed(0),
                       output_type="np").images[0]
    centre = image[32:96, 32:96].reshape(-1, 3).mean(axis=0)
    assert image.shape == (128, 128, 3)
    assert centre[0] > 0.5 and centre[0] > 1.5 * centre[2] and centre[0] > 1.3 * centre[1], centre


def _tiny_weights(folder: Path) -> Path:
    """A random tiny model in the shipped layout, with the real text encoder."""
    vae_size, unet_size = SIZES["tiny"]
    torch.manual_seed(0)
    build_vae(vae_size).save_pretrained(folder / "vae")
    build_unet(unet_size).save_pretrained(folder / "unet")
    build_scheduler().save_pretrained(folder / "scheduler")
    Vocabulary.from_pairs([("red apple", ["fruit"])]).save(folder / VOCABULARY)
    return folder


def test_export_loads_in_plain_diffusers_and_paints_the_same(tmp_path: Path) -> None:
    model = load_builtin(weights=_tiny_weights(tmp_path / "weights"))

    def paint(pipe: DiffusionPipeline) -> np.ndarray:
        return pipe("red apple", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(1)).images[0]

    expected = paint(model.pipe)
    out = export_model(model, tmp_path / "export", dtype=None)
    pipe = DiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert type(pipe.text_encoder).__name__ == "BertModel" and pipe.tokenizer.model_max_length == 32
    np.testing.assert_allclose(paint(pipe), expected, atol=1e-4)
    with pytest.raises(OutputError, match="not empty"):
        export_model(model, out)
    # keypaint itself reads the folder back with the model's keyword vocabulary
    again = load_model(str(out))
    assert again.vocabulary == model.vocabulary and again.expand("red apple").prompt == "red apple, fruit"
