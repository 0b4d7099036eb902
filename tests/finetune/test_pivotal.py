"""Pivotal tuning on tiny models: one LoRA file with the word bundled, the two learning rates, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.finetune import FinetuneConfig, FinetuneInfo, Method
from keypaint.finetune.textual_inversion import initial_vectors
from keypaint.finetune.train import finetune
from keypaint.models.checkpoint_files import read_safetensors_header

BUNDLED = "bundle_emb.zqstyle.string_to_param.*"  # A1111's name for an SD 1.x bundled embedding


def config(home: Path, pictures: Path, **changes: object) -> FinetuneConfig:
    base = FinetuneConfig(
        images=pictures, token="zqstyle", base="tiny", method=Method.PIVOTAL, steps=2, batch_size=2, lr=3e-2,
        embedding_lr=0.1, home=home, cpu=True, checkpoint_every=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def context_output(painter: Painter, prompt: str) -> torch.Tensor:
    """The U-Net's output for `prompt` encoded the way generation encodes it (LoRAs and words applied)."""
    from keypaint.prompts.encode import encode_prompts

    active = painter.adapters.activate(GenerationParams(prompt=prompt, loras=(LoraRef("zqstyle", 1.0),)))
    embeds = encode_prompts(painter.model, active.prompt, "", device=torch.device("cpu"), dtype=torch.float32,
                            embeddings=active.embeddings)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return painter.model.pipe.unet(torch.randn(1, 4, 8, 8, generator=generator), torch.tensor([500]),
                                       embeds.prompt_embeds).sample


def test_pivotal_writes_the_lora_with_the_word_and_generation_uses_both(home: Path, pictures: Path) -> None:
    painter = Painter.load("tiny", home=home)
    start = initial_vectors(painter.model, "style", 4)[0].detach()
    result = finetune(config(home, pictures), model=painter.model, progress=False)
    tensors = load_file(result.path)
    assert result.path == home / "loras" / "zqstyle.safetensors"
    assert tuple(tensors[BUNDLED].shape) == (4, 32) and not torch.allclose(tensors[BUNDLED], start)
    assert any(key.endswith(".lora_up.weight") for key in tensors)
    info = FinetuneInfo.from_header(read_safetensors_header(result.path).metadata)
    assert info is not None and info.method == "pivotal"
    assert (info.settings["vectors"], info.settings["embedding_lr"], info.settings["lr"]) == (4, 0.1, 3e-2)

    params = GenerationParams(prompt="red disc, zqstyle", seed=0, steps=2, loras=(LoraRef("zqstyle", 1.0),))
    [used] = painter.generate(params)
    assert used.extra["TI hashes"].startswith("zqstyle: ") and used.extra["Lora weights"] == "zqstyle: 1"
    [unsaid] = painter.generate(replace(params, prompt="red disc"))
    assert "TI hashes" not in unsaid.extra  # the word acts only where the prompt says it, as in A1111
    [plain] = painter.generate(replace(params, loras=()))
    assert "TI hashes" not in plain.extra  # the word is the LoRA's: without it, "zqstyle" is just text
    assert used.image.tobytes() != plain.image.tobytes()


def test_saved_pivotal_file_computes_what_training_computed(home: Path, pictures: Path) -> None:
    painter = Painter.load("tiny", home=home)
    trained: list[torch.Tensor] = []
    cfg = config(home, pictures, sample_every=2, sample_prompt="red disc, zqstyle")

    def last_step(step: int, loss: float) -> None:  # the live LoRA and vectors (= the sample file)
        if step == 2:
            from keypaint.prompts.embeddings import TextualInversion
            from keypaint.prompts.encode import encode_prompts

            vectors = load_file(home / "finetune" / "zqstyle-pivotal" / "samples" / "step-000002.safetensors")
            word = TextualInversion("zqstyle", (vectors["emb_params"],))
            embeds = encode_prompts(painter.model, "red disc, zqstyle", "", device=torch.device("cpu"),
                                    dtype=torch.float32, embeddings=[word])
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                trained.append(painter.model.pipe.unet(torch.randn(1, 4, 8, 8, generator=generator),
                                                       torch.tensor([500]), embeds.prompt_embeds).sample)

    finetune(cfg, model=painter.model, on_step=last_step, progress=False)
    torch.testing.assert_close(context_output(painter, "red disc, zqstyle"), trained[0], atol=2e-3, rtol=1e-3)


def test_the_word_and_the_lora_learn_at_their_own_rates(home: Path, pictures: Path) -> None:
    """One AdamW step moves every weight by about its learning rate: B (zero at the start) and the vectors."""
    cfg = config(home, pictures, steps=1, lr=1e-3, embedding_lr=0.1)
    painter = Painter.load("tiny", home=home)
    start = initial_vectors(painter.model, "style", 4)[0].detach()
    result = finetune(cfg, model=painter.model, progress=False)
    tensors = load_file(result.path)
    up = max(float(v.float().abs().max()) for k, v in tensors.items() if k.endswith(".lora_up.weight"))
    moved = float((tensors[BUNDLED] - start).abs().max())
    assert 0.9e-3 < up < 1.05e-3 and 0.09 < moved < 0.105


def test_killed_pivotal_run_resumes_to_the_same_file(home: Path, pictures: Path, tmp_path: Path) -> None:
    whole = finetune(config(home, pictures, steps=4, out=tmp_path / "whole.safetensors",
                            run_dir=tmp_path / "whole"), progress=False)
    cfg = config(home, pictures, steps=4, checkpoint_every=2, out=tmp_path / "resumed.safetensors",
                 run_dir=tmp_path / "resumed")

    def kill(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, on_step=kill, progress=False)
    resumed = finetune(replace(cfg, resume=True), progress=False)
    a, b = load_file(whole.path), load_file(resumed.path)
    assert a.keys() == b.keys() and BUNDLED in a
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_pivotal_on_sdxl_bundles_both_encoders_words(home: Path, pictures: Path) -> None:
    result = finetune(config(home, pictures, base="tiny-xl"), progress=False)
    tensors = load_file(result.path)
    assert tuple(tensors["bundle_emb.zqstyle.clip_l"].shape) == (4, 32)
    assert tuple(tensors["bundle_emb.zqstyle.clip_g"].shape) == (4, 32)
    painter = Painter.load("tiny-xl", home=home)
    [used] = painter.generate(
        GenerationParams(prompt="red disc, zqstyle", steps=2, seed=1, loras=(LoraRef("zqstyle", 1.0),))
    )
    assert used.extra["TI hashes"].startswith("zqstyle: ")
