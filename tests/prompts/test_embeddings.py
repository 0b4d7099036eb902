"""Textual-inversion vectors in prompt encoding: a trigger word stands for its vectors, nothing else."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from keypaint.builtin.text_encoder import load_text_encoder
from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.models.tiny import tiny_model, tiny_pipeline
from keypaint.prompts.chunks import tokenize_chunks
from keypaint.prompts.embeddings import TextualInversion
from keypaint.prompts.encode import encode_captions, encode_prompts

CPU = torch.device("cpu")


def rows(model: LoadedModel, word: str) -> tuple[torch.Tensor, ...]:
    """Per text encoder, the input embeddings of `word`'s tokens: what a trigger standing for it holds."""
    encoders = [(model.pipe.tokenizer, model.pipe.text_encoder)]
    if model.kind.is_xl:
        encoders.append((model.pipe.tokenizer_2, model.pipe.text_encoder_2))
    out = []
    for tokenizer, encoder in encoders:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        out.append(encoder.get_input_embeddings().weight[torch.tensor(ids)].detach().clone())
    return tuple(out)


def encode(model: LoadedModel, prompt: str, *embeddings: TextualInversion) -> torch.Tensor:
    embeds = encode_prompts(model, prompt, "", device=CPU, dtype=torch.float32, embeddings=embeddings)
    return (
        embeds.prompt_embeds
        if embeds.pooled_prompt_embeds is None
        else torch.cat([embeds.prompt_embeds.flatten(), embeds.pooled_prompt_embeds.flatten()])
    )


@pytest.fixture(scope="module")
def minilm() -> LoadedModel:
    """The built-in model's real MiniLM tokenizer and encoder on a tiny pipeline."""
    tokenizer, encoder = load_text_encoder()
    base = tiny_pipeline(ModelKind.SD1)
    pipe = StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=encoder,
        tokenizer=tokenizer,
        unet=base.unet,
        scheduler=base.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return LoadedModel("minilm", ModelKind.KEYPAINT, pipe)


@pytest.mark.parametrize("kind", [ModelKind.SD1, ModelKind.SDXL, "minilm"])
def test_trigger_holding_a_words_vectors_encodes_as_that_word(
    kind: ModelKind | str, minilm: LoadedModel
) -> None:
    model = minilm if kind == "minilm" else tiny_model(kind)  # type: ignore[arg-type]
    cat_dog = TextualInversion(
        "zqtok", tuple(torch.cat([c, d]) for c, d in zip(rows(model, "cat"), rows(model, "dog"), strict=True))
    )
    assert cat_dog.count == 2
    torch.testing.assert_close(
        encode(model, "a photo of ZQtok, red", cat_dog),
        encode(model, "a photo of cat dog, red"),
        atol=1e-5,
        rtol=1e-5,
    )
    assert not torch.allclose(encode(model, "a photo of zqtok", cat_dog), encode(model, "a photo of zqtok"))
    # only the whole word triggers it
    torch.testing.assert_close(encode(model, "zqtokx", cat_dog), encode(model, "zqtokx"))


def test_an_embedding_is_never_split_across_chunks() -> None:
    tokenizer = tiny_model(ModelKind.SD1).pipe.tokenizer
    prompt = "cat " * 74 + "zqtok"
    chunks, _ = tokenize_chunks(tokenizer, prompt, {"zqtok": 3})
    assert len(chunks) == 2
    assert [s for s in chunks[0].slots if s] == [] and chunks[0].length == 76
    assert [s for s in chunks[1].slots if s] == [("zqtok", 0), ("zqtok", 1), ("zqtok", 2)]
    assert chunks[1].slots[1] == ("zqtok", 0)  # right after the start token


def test_caption_encoding_trains_the_vectors() -> None:
    model = tiny_model(ModelKind.SD1)
    model.pipe.text_encoder.requires_grad_(False)  # frozen, as fine-tuning keeps it
    vectors = torch.nn.Parameter(torch.randn(2, 32))
    context, pooled = encode_captions(
        model, ["a (red) zqtok", "zqtok"], [TextualInversion("zqtok", (vectors,))]
    )
    assert context.shape == (2, 77, 32) and pooled is None
    context.pow(2).mean().backward()
    assert vectors.grad is not None and bool((vectors.grad != 0).all())
    assert vectors.grad.abs().sum() > 0
