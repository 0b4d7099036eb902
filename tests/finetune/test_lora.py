"""LoRA fine-tuning on tiny models: a file plain diffusers loads, its metadata, resume after a kill."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file

from keypaint.core.painter import Painter
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.errors import ModelError
from keypaint.finetune import FinetuneConfig, FinetuneError, FinetuneInfo, Method
from keypaint.finetune.train import finetune
from keypaint.models.checkpoint_files import read_safetensors_header
from keypaint.models.hashing import file_sha256
from keypaint.models.loaded import ModelKind
from keypaint.training.checkpoint import latest_checkpoint, read_checkpoint


def config(home: Path, pictures: Path, **changes: object) -> FinetuneConfig:
    """Two steps at a high learning rate, so even two steps move the LoRA visibly."""
    base = FinetuneConfig(
        images=pictures,
        token="zqstyle",
        base="tiny",
        steps=2,
        batch_size=2,
        lr=1e-2,
        home=home,
        cpu=True,
        checkpoint_every=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def unet_output(pipe: StableDiffusionPipeline) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        return pipe.unet(latents, torch.tensor([500]), context).sample


def test_lora_file_loads_in_plain_diffusers_and_matches_keypaint(
    home: Path, pictures: Path, tiny_models: Path
) -> None:
    result = finetune(config(home, pictures), progress=False)
    assert result.path == home / "loras" / "zqstyle.safetensors" and result.steps == 2
    assert result.bytes == result.path.stat().st_size < 200_000

    header = read_safetensors_header(result.path)
    assert all(key.startswith("lora_unet_") for key in header.tensors)
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"
    assert key in header.tensors
    assert header.metadata["ss_network_dim"] == "8" and header.metadata["ss_base_model_version"] == "sd_v1"
    info = FinetuneInfo.from_header(header.metadata)
    assert info is not None
    assert (info.method, info.token, info.steps, info.base_model) == ("lora", "zqstyle", 2, "tiny")
    unet_file = tiny_models / "tiny" / "unet" / "diffusion_pytorch_model.safetensors"
    assert info.base_sha256 == file_sha256(unet_file)
    assert [image["file"] for image in info.images] == [f"disc{i}.png" for i in range(4)]

    plain = StableDiffusionPipeline.from_pretrained(tiny_models / "tiny", safety_checker=None)
    before = unet_output(plain)
    plain.load_lora_weights(str(result.path.parent), weight_name=result.path.name)
    after = unet_output(plain)
    assert (after - before).abs().max() > 1e-3  # the LoRA does something ...

    painter = Painter.load("tiny", home=home)
    painter.adapters.activate(GenerationParams(prompt="x", loras=(LoraRef("zqstyle", 1.0),)))
    torch.testing.assert_close(unet_output(painter.model.pipe), after, atol=1e-5, rtol=1e-4)  # ... the same
    painter.adapters.activate(GenerationParams(prompt="x"))  # no LoRA asked: the base model again
    torch.testing.assert_close(unet_output(painter.model.pipe), before, atol=1e-6, rtol=1e-5)


def test_generation_applies_lora_weights_and_records_them(home: Path, pictures: Path) -> None:
    finetune(config(home, pictures), progress=False)
    painter = Painter.load("tiny", home=home)

    def picture(prompt: str, *loras: LoraRef) -> tuple[torch.Tensor, dict]:
        [result] = painter.generate(GenerationParams(prompt=prompt, seed=3, steps=2, loras=loras))
        return torch.tensor(list(result.image.getdata()), dtype=torch.float32), result.extra

    plain, extra = picture("red disc")
    assert extra == {}
    weighted, extra = picture("red disc", LoraRef("zqstyle", 2.0))
    assert extra["Lora weights"] == "zqstyle: 2" and extra["Lora hashes"].startswith("zqstyle: ")
    assert (weighted - plain).abs().max() > 0
    tagged, extra = picture("red disc<lora:zqstyle:2>")  # A1111's prompt syntax: same picture
    assert torch.equal(tagged, weighted) and extra["Lora weights"] == "zqstyle: 2"
    zero, _ = picture("red disc", LoraRef("zqstyle", 0.0))
    assert torch.equal(zero, plain)


def test_lora_on_another_base_model_is_refused_naming_both(home: Path, pictures: Path) -> None:
    result = finetune(config(home, pictures), progress=False)
    painter = Painter.load("tiny-other", home=home)
    params = GenerationParams(prompt="red disc", steps=2, loras=(LoraRef(str(result.path), 0.8),))
    with pytest.raises(ModelError, match=r"zqstyle.safetensors was trained on tiny \(\w{10}\).* tiny-other"):
        painter.generate(params)
    xl = Painter.load("tiny-xl", home=home)
    with pytest.raises(ModelError, match=r"trained on tiny .* tiny-xl"):
        xl.generate(params)


def test_killed_run_resumes_to_exactly_the_same_lora(home: Path, pictures: Path, tmp_path: Path) -> None:
    whole = finetune(
        config(home, pictures, steps=4, out=tmp_path / "whole.safetensors", run_dir=tmp_path / "whole"),
        progress=False,
    )
    cfg = config(
        home,
        pictures,
        steps=4,
        checkpoint_every=2,
        out=tmp_path / "resumed.safetensors",
        run_dir=tmp_path / "resumed",
    )

    def kill(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, on_step=kill, progress=False)
    found = latest_checkpoint(tmp_path / "resumed")
    assert found is not None and read_checkpoint(found).state["step"] == 2
    assert not cfg.out.exists()  # type: ignore[union-attr]
    with pytest.raises(FinetuneError, match="--resume"):
        finetune(cfg, progress=False)
    with pytest.raises(FinetuneError, match=r"other settings .*rank"):
        finetune(replace(cfg, resume=True, rank=4), progress=False)

    resumed = finetune(replace(cfg, resume=True), progress=False)
    a, b = load_file(whole.path), load_file(resumed.path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    with pytest.raises(FinetuneError, match="already exists"):
        finetune(replace(cfg, run_dir=tmp_path / "again"), progress=False)


def test_sdxl_lora_and_embedding(home: Path, pictures: Path, tiny_models: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    lora = finetune(config(home, pictures, base="tiny-xl"), progress=False)
    header = read_safetensors_header(lora.path)
    assert header.metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    plain = StableDiffusionXLPipeline.from_pretrained(tiny_models / "tiny-xl")
    plain.load_lora_weights(str(lora.path))
    assert any("lora_A" in name for name, _ in plain.unet.named_parameters())

    ti_config = config(home, pictures, base="tiny-xl", method=Method.TEXTUAL_INVERSION, lr=0.1)
    ti = finetune(ti_config, progress=False)
    tensors = load_file(ti.path)
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"clip_l": (4, 32), "clip_g": (4, 32)}
    painter = Painter.load("tiny-xl", home=home)
    [result] = painter.generate(
        GenerationParams(prompt="red disc, zqstyle", steps=2, seed=1, loras=(LoraRef("zqstyle", 1.0),))
    )
    assert result.extra["TI hashes"].startswith("zqstyle: ")  # found in <home>/embeddings by its name


def test_saved_lora_paints_what_training_painted_and_model_comes_back(home: Path, pictures: Path) -> None:
    painter = Painter.load("tiny", home=home)
    before = unet_output(painter.model.pipe)
    result = finetune(
        config(home, pictures, sample_every=2, sample_prompt="red disc, zqstyle"),
        model=painter.model,
        progress=False,
    )
    torch.testing.assert_close(
        unet_output(painter.model.pipe), before, atol=0, rtol=0
    )  # given back as it was
    assert not getattr(painter.model.pipe.unet, "peft_config", None)
    trained = np.asarray(Image.open(result.samples[-1]), dtype=np.int16)  # painted with the live LoRA
    params = GenerationParams(prompt="red disc, zqstyle", seed=0, steps=20, loras=(LoraRef("zqstyle", 1.0),))
    saved = np.asarray(painter.generate(params)[0].image, dtype=np.int16)  # with the file, fp16
    assert np.abs(saved - trained).max() <= 2
    plain = np.asarray(painter.generate(replace(params, loras=()))[0].image, dtype=np.int16)
    assert np.abs(plain - trained).max() > 10


def test_sd2_v_prediction_lora(home: Path, pictures: Path, tmp_path: Path) -> None:
    from keypaint.models.tiny import tiny_pipeline

    pipe = tiny_pipeline(ModelKind.SD2)
    pipe.scheduler.register_to_config(prediction_type="v_prediction")  # as SD 2.x 768-v checkpoints
    pipe.save_pretrained(home / "models" / "tiny-v")
    result = finetune(config(home, pictures, base="tiny-v"), progress=False)
    header = read_safetensors_header(result.path)
    assert header.metadata["ss_base_model_version"] == "sd_v2"
    assert header.tensors["lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight"].shape == (8, 32)
    plain = StableDiffusionPipeline.from_pretrained(home / "models" / "tiny-v", safety_checker=None)
    plain.load_lora_weights(str(result.path))
    assert any("lora_A" in name for name, _ in plain.unet.named_parameters())


def test_training_on_a_painter_whose_loras_are_off_trains_the_same_lora(home: Path, pictures: Path) -> None:
    """A painter that painted with a LoRA and then without one has its LoRA layers switched off; a LoRA
    trained on that model afterwards must still train, to the very file a fresh model gives."""

    def train(model: object, name: str) -> dict[str, torch.Tensor]:
        cfg = config(home, pictures, token="zqchar", out=home / f"{name}.safetensors", run_dir=home / name)
        return load_file(finetune(cfg, model=model, progress=False).path)  # type: ignore[arg-type]

    reference = train(Painter.load("tiny", home=home).model, "fresh")
    painter = Painter.load("tiny", home=home)
    finetune(config(home, pictures), model=painter.model, progress=False)
    painter.generate(GenerationParams(prompt="red disc", seed=0, steps=2, loras=(LoraRef("zqstyle", 1.0),)))
    painter.generate(GenerationParams(prompt="red disc", seed=0, steps=2))  # LoRAs switched off
    trained = train(painter.model, "after")
    assert trained.keys() == reference.keys()
    for key, tensor in reference.items():
        torch.testing.assert_close(trained[key], tensor, atol=0, rtol=0)
