"""Prompt and negative prompt -> the text-encoder embeddings diffusers pipelines take as `prompt_embeds`.

Prompts use A1111's emphasis syntax and chunking (see `parser` and `chunks`), so a prompt copied from
AUTOMATIC1111's web UI gets the same conditioning here. We don't use compel (PyPI): it parses its own
InvokeAI-derived syntax (`word++`, `(word)1.1`, `.blend()`, `.and()`) rather than A1111's `(word:1.3)` and
`[word]`, and it down-weights by blending with the prompt without the term instead of A1111's scaling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from keypaint.models.loaded import LoadedModel, ModelKind
from keypaint.prompts.chunks import Chunk, SpecialTokens, empty_chunk, tokenize_chunks
from keypaint.prompts.embeddings import TextualInversion, inserted_vectors


@dataclass
class PromptEmbeddings:
    """Conditioning for one prompt and its negative, ready for a diffusers pipeline."""

    prompt_embeds: torch.Tensor  # (batch, seq, dim)
    negative_prompt_embeds: torch.Tensor  # (batch, seq, dim), same seq as prompt_embeds
    pooled_prompt_embeds: torch.Tensor | None = None  # SDXL only: (batch, dim2)
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def repeat(self, n: int) -> PromptEmbeddings:
        """The same conditioning for a batch of `n` pictures (one prompt, many seeds)."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat(n, *([1] * (t.dim() - 1)))

        return PromptEmbeddings(rep(self.prompt_embeds), rep(self.negative_prompt_embeds),
                                rep(self.pooled_prompt_embeds), rep(self.negative_pooled_prompt_embeds))


def _encoders(model: LoadedModel) -> list[tuple[PreTrainedTokenizerBase, PreTrainedModel]]:
    """The (tokenizer, text encoder) pairs whose outputs are concatenated on the feature axis."""
    pipe = model.pipe
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if model.kind.is_xl:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    pairs = [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]
    if not pairs:
        raise ValueError(f"{model.name} has no text encoder")
    return pairs


def _forward(text_encoder: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor | None,
             kind: ModelKind) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states the U-Net was trained on, and CLIP's projected pooled output where there is one.

    SD1/SD2/KEYPAINT: last_hidden_state (SD2's shipped encoder already stops at the penultimate layer).
    SDXL: the penultimate layer, without the final layer norm, as diffusers' `encode_prompt` does.
    """
    out = text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=kind.is_xl)
    hidden = out.hidden_states[-2] if kind.is_xl else out.last_hidden_state
    return hidden, getattr(out, "text_embeds", None)


def _emphasise(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111's "Original" emphasis, per chunk: z' = z * w, then z' *= mean(z) / mean(z').

    Restoring the mean keeps the overall magnitude the U-Net expects while shifting it between tokens.
    A weighted mean of exactly 0 (possible only for untrained encoders) skips the rescale instead of
    dividing by zero, which in A1111 turns the whole conditioning into NaN.
    """
    if bool((weights == 1).all()):
        return z  # the same numbers without the rounding of multiplying by mean / mean
    mean = z.mean(dim=(1, 2), keepdim=True)
    z = z * weights.unsqueeze(-1)
    new_mean = z.mean(dim=(1, 2), keepdim=True)
    return z * torch.where(new_mean == 0, 1.0, mean / new_mean)


def _forward_chunks(text_encoder: PreTrainedModel, chunks: list[Chunk], kind: ModelKind,
                    device: torch.device | str, vectors: dict[str, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch row per chunk; textual-inversion vectors go into the placeholder positions."""
    ids = torch.tensor([c.ids for c in chunks], device=device)
    mask = None
    if kind is ModelKind.KEYPAINT:  # BERT attends everywhere unless told; CLIP is causal and needs none
        mask = torch.tensor([[1] * c.length + [0] * (len(c.ids) - c.length) for c in chunks], device=device)
    with inserted_vectors(text_encoder, [c.slots for c in chunks], vectors or {}):
        return _forward(text_encoder, ids, mask, kind)


def _encode_chunks(text_encoder: PreTrainedModel, chunks: list[Chunk], kind: ModelKind,
                   device: torch.device | str, vectors: dict[str, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode each chunk on its own (one batch row each); join them along the sequence axis."""
    z, pooled = _forward_chunks(text_encoder, chunks, kind, device, vectors)
    weights = torch.tensor([c.weights for c in chunks], device=z.device, dtype=z.dtype)
    z = _emphasise(z, weights)
    return z.reshape(1, -1, z.shape[-1]), None if pooled is None else pooled[:1]


def _vectors(embeddings: Sequence[TextualInversion], encoder: int) -> dict[str, torch.Tensor]:
    return {e.key: e.vectors[encoder] for e in embeddings}


def encode_prompts(model: LoadedModel, prompt: str, negative_prompt: str, *, device: torch.device | str,
                   dtype: torch.dtype, embeddings: Sequence[TextualInversion] = ()) -> PromptEmbeddings:
    """Embeddings for `prompt` and `negative_prompt`, padded with empty chunks to the same length.

    The text encoders must already sit on `device` (or be offloaded by hooks that move them there).
    SDXL: the pooled embeds come from the second encoder's first chunk; an empty negative prompt gives
    zeros, as diffusers' `force_zeros_for_empty_prompt` and A1111 do. `embeddings` are the textual
    inversions whose trigger words the prompts may use (one vector set per text encoder).
    """
    kind = model.kind
    if kind.is_flow:  # SD3, Flux: T5 beside CLIP, no chunking (prompts.flow_encode)
        from keypaint.prompts.flow_encode import encode_flow_prompts

        if embeddings:
            raise ValueError(f"{model.name}: textual-inversion embeddings are for SD 1.x, 2.x and SDXL")
        return encode_flow_prompts(model, prompt, negative_prompt, device=device, dtype=dtype)
    pairs = _encoders(model)
    zero_negative = (kind.is_xl and negative_prompt == ""
                     and bool(getattr(model.pipe.config, "force_zeros_for_empty_prompt", True)))
    texts = [prompt] if zero_negative else [prompt, negative_prompt]
    triggers = {e.key: e.count for e in embeddings}
    chunked = [[tokenize_chunks(tok, text, triggers)[0] for text in texts] for tok, _ in pairs]
    n = max(len(chunks) for per_encoder in chunked for chunks in per_encoder)

    embeds: list[list[torch.Tensor]] = [[] for _ in texts]
    pooled: list[torch.Tensor | None] = [None for _ in texts]
    with torch.no_grad():
        for e, ((tok, encoder), per_encoder) in enumerate(zip(pairs, chunked, strict=True)):
            filler = empty_chunk(SpecialTokens.of(tok))
            vectors = _vectors(embeddings, e)
            for i, chunks in enumerate(per_encoder):
                z, p = _encode_chunks(encoder, chunks + [filler] * (n - len(chunks)), kind, device, vectors)
                embeds[i].append(z)
                pooled[i] = p if p is not None else pooled[i]

    def done(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    positive = done(torch.cat(embeds[0], dim=-1))
    positive_pooled = done(pooled[0]) if kind.is_xl and pooled[0] is not None else None
    if zero_negative:
        negative = torch.zeros_like(positive)
        negative_pooled = None if positive_pooled is None else torch.zeros_like(positive_pooled)
    else:
        negative = done(torch.cat(embeds[1], dim=-1))
        negative_pooled = done(pooled[1]) if kind.is_xl and pooled[1] is not None else None
    return PromptEmbeddings(positive, negative, positive_pooled, negative_pooled)


def encode_plain(tokenizer: PreTrainedTokenizerBase, text_encoder: PreTrainedModel, texts: list[str],
                 kind: ModelKind) -> torch.Tensor:
    """One truncated window per text, no emphasis syntax: how training encodes captions.

    Uses the same wrapping and layer as `encode_prompts`, so a short plain prompt gets exactly the
    conditioning the built-in model was trained on. Gradients flow unless the caller disables them.
    """
    batch = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                      return_tensors="pt")
    device = text_encoder.device
    mask = batch["attention_mask"].to(device) if kind is ModelKind.KEYPAINT else None
    z, _ = _forward(text_encoder, batch["input_ids"].to(device), mask, kind)
    return z


def encode_captions(model: LoadedModel, captions: list[str], embeddings: Sequence[TextualInversion] = ()
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training conditioning for plain captions: (context, SDXL pooled or None), gradients kept.

    One window per caption (the first chunk; captions are short keyword lists), no emphasis syntax, every
    text encoder of the model concatenated as `encode_prompts` does; textual-inversion vectors that
    require grad are trained through it.
    """
    contexts, pooled = [], None
    for e, (tok, encoder) in enumerate(_encoders(model)):
        triggers = {emb.key: emb.count for emb in embeddings}
        chunks = [tokenize_chunks(tok, _literal(caption), triggers)[0][0] for caption in captions]
        z, p = _forward_chunks(encoder, chunks, model.kind, encoder.device, _vectors(embeddings, e))
        contexts.append(z)
        pooled = p if p is not None else pooled
    return torch.cat(contexts, dim=-1), pooled if model.kind.is_xl else None


def _literal(text: str) -> str:
    """`text` with brackets escaped, so the emphasis parser reads a caption as plain words."""
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def token_count(model: LoadedModel, prompt: str) -> tuple[int, int]:
    """(tokens used, tokens that fit before another chunk is needed), like A1111's "12/75" counter."""
    tokenizer = _encoders(model)[0][0]
    _, count = tokenize_chunks(tokenizer, prompt)
    capacity = SpecialTokens.of(tokenizer).capacity
    return count, math.ceil(max(count, 1) / capacity) * capacity
