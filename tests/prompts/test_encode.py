"""Embeddings from the tiny real pipelines, checked against diffusers' `encode_prompt` and A1111's math."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from transformers import BertConfig, BertModel, BertTokenizerFast

from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model, tiny_pipeline
from keypaint.prompts import PromptEmbeddings, encode_plain, encode_prompts, token_count

CPU = torch.device("cpu")
F32 = torch.float32
LONG = " ".join(["cat", "dog"] * 100)  # 200 tokens, no commas


def encode(model: LoadedModel, prompt: str, negative: str = "") -> PromptEmbeddings:
    return encode_prompts(model, prompt, negative, device=CPU, dtype=F32)


def trained_like(model: LoadedModel) -> LoadedModel:
    """Give the final layer norm a nonzero bias, as trained CLIP has.

    Freshly initialised, it outputs exactly zero-mean tokens, so the mean A1111's emphasis restores would be
    0 and the rescale meaningless.
    """
    torch.manual_seed(1)
    norms = [module for name, module in model.pipe.text_encoder.named_modules()
             if name.endswith("final_layer_norm")]
    assert len(norms) == 1
    with torch.no_grad():
        norms[0].bias.copy_(torch.randn_like(norms[0].bias))
    return model


@pytest.fixture(scope="module")
def sd1() -> LoadedModel:
    return trained_like(tiny_model(ModelKind.SD1))


@pytest.fixture(scope="module")
def sdxl() -> LoadedModel:
    return tiny_model(ModelKind.SDXL)


@pytest.fixture(scope="module")
def keypaint(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The built-in model's shape at toy size: a BERT text encoder with a 32-token window."""
    folder: Path = tmp_path_factory.mktemp("bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "a", "cat", "dog", "photo", "of", "on", "mat"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(folder, model_max_length=32)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    base = tiny_pipeline(ModelKind.SD1)
    pipe = StableDiffusionPipeline(
        vae=base.vae, text_encoder=BertModel(config).eval(), tokenizer=tokenizer, unet=base.unet,
        scheduler=base.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return LoadedModel(name="tiny-keypaint", kind=ModelKind.KEYPAINT, pipe=pipe)


@pytest.mark.parametrize("kind", [ModelKind.SD1, ModelKind.SD2])
def test_weight_one_equals_diffusers_encode_prompt(kind: ModelKind) -> None:
    model = trained_like(tiny_model(kind))
    expected, expected_negative = model.pipe.encode_prompt("a photo of a cat", CPU, 1, True,
                                                            negative_prompt="blurry, ugly")
    got = encode(model, "a photo of a cat", "blurry, ugly")
    torch.testing.assert_close(got.prompt_embeds, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.negative_prompt_embeds, expected_negative, rtol=1e-5, atol=1e-6)
    assert got.pooled_prompt_embeds is None and got.negative_pooled_prompt_embeds is None


@pytest.mark.parametrize(("emphasised", "w"), [("a (cat) on a mat", 1.1), ("a [cat] on a mat", 1 / 1.1),
                                                ("a (cat:1.8) on a mat", 1.8)])
def test_emphasis_scales_the_token_then_restores_the_mean(sd1: LoadedModel, emphasised: str,
                                                          w: float) -> None:
    plain = encode(sd1, "a cat on a mat").prompt_embeds
    got = encode(sd1, emphasised).prompt_embeds
    cat = 2  # start, a, cat
    weights = torch.ones(77)
    weights[cat] = w
    expected = plain * weights[None, :, None]
    expected = expected * (plain.mean() / expected.mean())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.mean(), plain.mean())
    # Relative to the plain prompt, every token moves by one common factor except the emphasised one.
    ratio = (got / plain)[0]
    common = ratio[0, 0]
    assert not torch.isclose(common, torch.tensor(1.0))
    torch.testing.assert_close(ratio[cat], torch.full_like(ratio[cat], float(common * w)))
    others = torch.cat([ratio[:cat], ratio[cat + 1 :]])
    torch.testing.assert_close(others, torch.full_like(others, float(common)))


def test_long_prompt_is_chunked_not_cut(sd1: LoadedModel) -> None:
    got = encode(sd1, LONG)
    assert got.prompt_embeds.shape == (1, 3 * 77, 32)
    assert got.negative_prompt_embeds.shape == (1, 3 * 77, 32)
    # Each chunk is encoded on its own: the second one equals the prompt made of its tokens alone.
    second = encode(sd1, " ".join(["dog", "cat"] * 37 + ["dog"])).prompt_embeds
    torch.testing.assert_close(got.prompt_embeds[:, 77:154], second)


def test_break_encodes_each_part_on_its_own(sd1: LoadedModel) -> None:
    got = encode(sd1, "a cat BREAK a dog").prompt_embeds
    assert got.shape == (1, 154, 32)
    torch.testing.assert_close(got[:, :77], encode(sd1, "a cat").prompt_embeds)
    torch.testing.assert_close(got[:, 77:], encode(sd1, "a dog").prompt_embeds)


@pytest.mark.parametrize("positive_is_longer", [True, False])
def test_prompt_and_negative_are_padded_to_the_same_length(sd1: LoadedModel,
                                                           positive_is_longer: bool) -> None:
    short, long = "a cat", LONG
    prompt, negative = (long, short) if positive_is_longer else (short, long)
    got = encode(sd1, prompt, negative)
    assert got.prompt_embeds.shape == got.negative_prompt_embeds.shape == (1, 231, 32)
    padded = got.negative_prompt_embeds if positive_is_longer else got.prompt_embeds
    empty = encode(sd1, "").prompt_embeds
    torch.testing.assert_close(padded[:, :77], encode(sd1, short).prompt_embeds)
    torch.testing.assert_close(padded[:, 77:154], empty)
    torch.testing.assert_close(padded[:, 154:], empty)


def test_sdxl_matches_diffusers(sdxl: LoadedModel) -> None:
    expected = sdxl.pipe.encode_prompt("a photo of a cat", device=CPU, num_images_per_prompt=1,
                                       do_classifier_free_guidance=True, negative_prompt="blurry")
    got = encode(sdxl, "a photo of a cat", "blurry")
    assert got.prompt_embeds.shape == (1, 77, 64)  # 32 + 32 features from the two encoders
    assert got.pooled_prompt_embeds is not None and got.pooled_prompt_embeds.shape == (1, 32)
    for ours, theirs in zip([got.prompt_embeds, got.negative_prompt_embeds, got.pooled_prompt_embeds,
                             got.negative_pooled_prompt_embeds], expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_sdxl_empty_negative_is_zeros(sdxl: LoadedModel) -> None:
    got = encode(sdxl, LONG, "")
    assert got.prompt_embeds.shape == got.negative_prompt_embeds.shape == (1, 231, 64)
    assert not got.negative_prompt_embeds.any()
    assert got.negative_pooled_prompt_embeds is not None and not got.negative_pooled_prompt_embeds.any()
    assert got.pooled_prompt_embeds is not None and got.pooled_prompt_embeds.abs().sum() > 0
    assert encode(sdxl, "a cat", " ").negative_prompt_embeds.any()  # only the empty prompt is zeroed


def test_sdxl_pooled_comes_from_the_first_chunk(sdxl: LoadedModel) -> None:
    got = encode(sdxl, "a cat BREAK a dog", "a dog BREAK a cat")
    torch.testing.assert_close(got.pooled_prompt_embeds, encode(sdxl, "a cat").pooled_prompt_embeds)
    torch.testing.assert_close(got.negative_pooled_prompt_embeds, encode(sdxl, "a dog").pooled_prompt_embeds)


def test_repeat_and_dtype(sdxl: LoadedModel) -> None:
    got = encode_prompts(sdxl, "a cat", "a dog", device=CPU, dtype=torch.float64).repeat(3)
    assert got.prompt_embeds.shape == got.negative_prompt_embeds.shape == (3, 77, 64)
    assert got.pooled_prompt_embeds is not None and got.pooled_prompt_embeds.shape == (3, 32)
    assert got.prompt_embeds.dtype == torch.float64
    torch.testing.assert_close(got.prompt_embeds[2], got.prompt_embeds[0])


def test_zero_mean_does_not_turn_into_nan() -> None:
    untrained = tiny_model(ModelKind.SD1)  # zero-mean layer norm output: the rescale is skipped, not NaN
    assert torch.isfinite(encode(untrained, "a (cat) on a mat").prompt_embeds).all()


def test_no_gradients_are_recorded(sd1: LoadedModel) -> None:
    assert not encode(sd1, "a (cat)").prompt_embeds.requires_grad


def test_sd1_plain_short_prompt_equals_encode_plain(sd1: LoadedModel) -> None:
    plain = encode_plain(sd1.pipe.tokenizer, sd1.pipe.text_encoder, ["a photo of a cat"], ModelKind.SD1)
    torch.testing.assert_close(encode(sd1, "a photo of a cat").prompt_embeds, plain, rtol=0, atol=0)


def test_keypaint_plain_short_prompt_equals_encode_plain(keypaint: LoadedModel) -> None:
    texts = ["a photo of a cat", "a dog on a mat"]
    plain = encode_plain(keypaint.pipe.tokenizer, keypaint.pipe.text_encoder, texts, ModelKind.KEYPAINT)
    assert plain.shape == (2, 32, 32)
    for i, text in enumerate(texts):
        torch.testing.assert_close(encode(keypaint, text).prompt_embeds, plain[i : i + 1], rtol=0, atol=0)


def test_keypaint_masks_padding(keypaint: LoadedModel) -> None:
    # With the attention mask, the real tokens' outputs do not depend on how much padding follows.
    got = encode(keypaint, "a cat").prompt_embeds
    ids = keypaint.pipe.tokenizer("a cat", return_tensors="pt")["input_ids"]  # [CLS] a cat [SEP]
    with torch.no_grad():
        unpadded = keypaint.pipe.text_encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(got[:, :4], unpadded, rtol=1e-5, atol=1e-5)


def test_keypaint_chunks_by_its_own_window(keypaint: LoadedModel) -> None:
    got = encode(keypaint, "cat " * 40, "dog")
    assert got.prompt_embeds.shape == got.negative_prompt_embeds.shape == (1, 64, 32)  # 40 tokens: 2 x 30
    assert token_count(keypaint, "cat " * 40) == (40, 60)


def test_token_count(sd1: LoadedModel, sdxl: LoadedModel) -> None:
    assert token_count(sd1, "a photo of a cat") == (5, 75)
    assert token_count(sd1, "") == (0, 75)
    assert token_count(sd1, LONG) == (200, 225)
    assert token_count(sd1, "a (cat:1.3)") == (2, 75)  # syntax costs no tokens
    assert token_count(sdxl, "a cat BREAK a dog") == (77, 150)


@pytest.mark.parametrize("kind", [ModelKind.SD1, ModelKind.SDXL])
def test_pipeline_accepts_the_embeddings(kind: ModelKind) -> None:
    model = trained_like(tiny_model(kind))
    embeds = encode(model, "a (cat) BREAK on a mat", "blurry").repeat(2)
    extra = {}
    if kind.is_xl:
        extra = {"pooled_prompt_embeds": embeds.pooled_prompt_embeds,
                 "negative_pooled_prompt_embeds": embeds.negative_pooled_prompt_embeds}
    latents = model.pipe(prompt_embeds=embeds.prompt_embeds,
                         negative_prompt_embeds=embeds.negative_prompt_embeds, num_inference_steps=2,
                         height=64, width=64, output_type="latent",
                         generator=torch.Generator().manual_seed(0), **extra).images
    assert latents.shape == (2, 4, 8, 8) and torch.isfinite(latents).all()
