"""Textual inversion: learn only the input vectors of one new word (Gal et al. 2022).

The vectors start as the embedding of a word the model knows (`--init-word`) and are the only trained
weights; the model stays frozen. They enter the text encoder through the same hook that applies a saved
embedding at generation time (`keypaint.prompts.embeddings`), and are saved in A1111's layout:
`emb_params` (n, dim), or `clip_l` and `clip_g` for SDXL's two encoders.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from keypaint.finetune.config import FinetuneError
from keypaint.models.loaded import LoadedModel
from keypaint.prompts.embeddings import TextualInversion


def text_encoders(model: LoadedModel) -> list[tuple[PreTrainedTokenizerBase, PreTrainedModel]]:
    pipe = model.pipe
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if model.kind.is_xl:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def initial_vectors(model: LoadedModel, init_word: str, count: int) -> list[torch.nn.Parameter]:
    """Per text encoder, `count` copies of the mean input embedding of `init_word`'s tokens, fp32."""
    vectors = []
    for tokenizer, encoder in text_encoders(model):
        ids = tokenizer(init_word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise FinetuneError(f"--init-word {init_word!r} has no tokens for this model's tokenizer")
        table = encoder.get_input_embeddings().weight.detach()
        start = table[torch.tensor(ids, device=table.device)].float().mean(dim=0)
        vectors.append(torch.nn.Parameter(start.repeat(count, 1).cpu().clone()))
    return vectors


def as_embedding(token: str, vectors: list[torch.nn.Parameter] | list[torch.Tensor]) -> TextualInversion:
    return TextualInversion(token, tuple(vectors))


def embedding_tensors(model: LoadedModel, vectors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """A1111's file layout for this model family, fp32 (a few kilobytes)."""
    data = [v.detach().float().cpu().contiguous() for v in vectors]
    if model.kind.is_xl:
        return {"clip_l": data[0], "clip_g": data[1]}
    return {"emb_params": data[0]}


def vectors_state(vectors: list[torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """Checkpoint form: one entry per encoder."""
    return {f"vectors.{i}": v.detach().float().cpu().contiguous() for i, v in enumerate(vectors)}


def load_vectors_state(vectors: list[torch.nn.Parameter], state: dict[str, torch.Tensor]) -> None:
    for i, v in enumerate(vectors):
        saved = state.get(f"vectors.{i}")
        if saved is None or saved.shape != v.shape:
            raise FinetuneError(f"checkpoint vectors {i} do not match this run (shape {tuple(v.shape)})")
        v.data.copy_(saved.to(v.device))
