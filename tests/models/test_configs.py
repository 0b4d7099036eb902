"""The shipped config folders are the real models' configs: proven by parameter counts, without downloads."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from keypaint.models.configs import SHIPPED_CONFIGS, load_scheduler, load_tokenizer, shipped_config
from keypaint.models.detect import kind_from_diffusers
from keypaint.models.loaded import ModelKind

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's reference ids for "a photo of a cat"

# Published parameter counts of the real models.
UNET_PARAMS = {
    "sd15": 859_520_964, "sd15-inpainting": 859_535_364, "sd2-base": 865_910_724, "sd21": 865_910_724,
    "sd2-inpainting": 865_925_124, "sdxl-base": 2_567_463_684, "sdxl-inpainting": 2_567_478_084,
}
SD_VAE_PARAMS = 83_653_863
CLIP_L_PARAMS = 123_060_480
OPENCLIP_H_PARAMS = 340_387_840  # 23 of ViT-H's 24 layers
OPENCLIP_BIGG_PARAMS = 694_659_840  # with its text projection
KINDS = {"sd15": ModelKind.SD1, "sd15-inpainting": ModelKind.SD1, "sd2-base": ModelKind.SD2,
         "sd21": ModelKind.SD2, "sd2-inpainting": ModelKind.SD2, "sdxl-base": ModelKind.SDXL,
         "sdxl-inpainting": ModelKind.SDXL}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


UNET_CONFIGS = tuple(KINDS)
FLOW_CONFIGS = tuple(name for name in SHIPPED_CONFIGS if name not in KINDS)
# Transformer parameters of the real models (without SD3's positional-embedding buffer: +226 M for 3.5
# medium's 384x384 grid makes its published 2.5 B), their 16-channel VAE and T5-XXL's encoder.
FLOW_PARAMS = {"flux-dev": 11_901_408_320, "flux-schnell": 11_891_178_560, "sd3-medium": 2_028_328_000,
               "sd35-medium": 2_243_171_520, "sd35-large": 8_056_627_520}
FLOW_VAE_PARAMS = 83_819_683
T5_XXL_PARAMS = 4_762_310_656


@pytest.mark.parametrize("name", FLOW_CONFIGS)
def test_shipped_flow_config_builds_the_real_architecture(name: str) -> None:
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
    from transformers import T5Config, T5EncoderModel

    folder = shipped_config(name)
    flux = name.startswith("flux")
    cls = FluxTransformer2DModel if flux else SD3Transformer2DModel
    with torch.device("meta"):
        transformer = cls.from_config(cls.load_config(folder, subfolder="transformer"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        t5_folder = "text_encoder_2" if flux else "text_encoder_3"
        t5 = T5EncoderModel(T5Config.from_pretrained(folder, subfolder=t5_folder))
        clip_l = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
    assert (count(transformer), count(vae), count(t5)) == (FLOW_PARAMS[name], FLOW_VAE_PARAMS, T5_XXL_PARAMS)
    assert count(clip_l) == CLIP_L_PARAMS
    assert vae.config.latent_channels == 16
    t5_tokenizer = load_tokenizer(folder, "tokenizer_2" if flux else "tokenizer_3")
    assert t5_tokenizer("a photo of a cat").input_ids == [3, 9, 1202, 13, 3, 9, 1712, 1]  # T5 v1.1's ids
    assert load_tokenizer(folder)("a photo of a cat").input_ids == CAT_IDS
    if not flux:
        with torch.device("meta"):
            config_g = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")
            clip_g = CLIPTextModelWithProjection(config_g)
        assert count(clip_g) == OPENCLIP_BIGG_PARAMS
        assert load_tokenizer(folder, "tokenizer_2").pad_token == "!"


@pytest.mark.parametrize("name", UNET_CONFIGS)
def test_shipped_config_builds_the_real_architecture(name: str) -> None:
    folder = shipped_config(name)
    unet_config = UNet2DConditionModel.load_config(folder, subfolder="unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
    assert count(unet) == UNET_PARAMS[name]
    assert count(vae) == SD_VAE_PARAMS
    assert unet.config.in_channels == (9 if "inpainting" in name else 4)
    assert kind_from_diffusers(dict(unet_config), "CLIPTextModel") is KINDS[name]
    if KINDS[name] is ModelKind.SD2:
        assert count(text) == OPENCLIP_H_PARAMS
    else:
        assert count(text) == CLIP_L_PARAMS
    if KINDS[name] is ModelKind.SDXL:
        with torch.device("meta"):
            config_2 = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")
            text_2 = CLIPTextModelWithProjection(config_2)
        assert count(text_2) == OPENCLIP_BIGG_PARAMS
        assert vae.config.scaling_factor == 0.13025
    else:
        assert vae.config.scaling_factor == 0.18215


@pytest.mark.parametrize("name", UNET_CONFIGS)
def test_shipped_tokenizers(name: str) -> None:
    folder = shipped_config(name)
    tokenizer = load_tokenizer(folder)
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS
    assert tokenizer.model_max_length == 77
    assert tokenizer.pad_token == ("!" if KINDS[name] is ModelKind.SD2 else "<|endoftext|>")
    if KINDS[name] is ModelKind.SDXL:
        tokenizer_2 = load_tokenizer(folder, "tokenizer_2")
        assert tokenizer_2.pad_token == "!"
        assert tokenizer_2.pad_token_id == 0
        assert tokenizer_2("a photo of a cat").input_ids == CAT_IDS


@pytest.mark.parametrize(("name", "prediction", "size"), [
    ("sd15", "epsilon", 512), ("sd2-base", "epsilon", 512), ("sd21", "v_prediction", 768),
    ("sd2-inpainting", "epsilon", 512), ("sdxl-base", "epsilon", 1024),
])
def test_shipped_scheduler_and_size(name: str, prediction: str, size: int) -> None:
    folder = shipped_config(name)
    assert load_scheduler(folder).config.prediction_type == prediction
    assert UNet2DConditionModel.load_config(folder, subfolder="unet")["sample_size"] * 8 == size


def test_configs_share_one_vocabulary() -> None:
    """The 1.5 MB BPE files ship once; config folders hold only small JSON files."""
    for name in SHIPPED_CONFIGS:
        files = [p for p in shipped_config(name).rglob("*") if p.is_file()]
        assert all(p.suffix == ".json" and p.stat().st_size < 10_000 for p in files), name
