"""Textual-inversion embeddings in prompts: a trigger word stands for learned token vectors.

As in A1111 (`modules/textual_inversion`), a trigger typed in the prompt is replaced by its `n` vectors
in the text encoder's input: the word becomes `n` placeholder tokens, and a forward hook on the encoder's
token-embedding layer writes the learned vectors into those positions. The model is never modified, so
embeddings can differ from one request to the next, and training uses the same path with vectors that
require grad (Gal et al. 2022, "An Image is Worth One Word").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from keypaint.prompts.triggers import Slot, trigger_regex

if TYPE_CHECKING:  # tensors only pass through here; PyTorch is imported where they are combined
    import torch
    from transformers import PreTrainedModel

TOKEN_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,39}")  # what a trigger word may look like



@dataclass(frozen=True)
class TextualInversion:
    """A trigger word and its vectors: one (n, dim) tensor per text encoder, in the model's encoder order."""

    token: str
    vectors: tuple[torch.Tensor, ...] = field(repr=False)
    source: Path | None = None  # the file it came from; None while training
    sha256: str | None = None

    @property
    def count(self) -> int:
        """Tokens the trigger takes in the prompt."""
        return int(self.vectors[0].shape[0])

    @property
    def key(self) -> str:
        return self.token.lower()


def mentioned(text: str, tokens: Sequence[str]) -> set[str]:
    """The triggers (lower case) that occur in `text` as whole words."""
    pattern = trigger_regex(tokens)
    return {match.group(0).lower() for match in pattern.finditer(text)} if pattern else set()


@contextmanager
def inserted_vectors(
    text_encoder: PreTrainedModel, slots: Sequence[Sequence[Slot]], vectors: Mapping[str, torch.Tensor]
) -> Iterator[None]:
    """While active, row r position p of the token embeddings is replaced by the vector its slot names.

    `slots[r][p]` follows the encoder's input ids; `vectors` maps a trigger to its (n, dim) tensor for this
    encoder. `index_put` keeps the graph, so vectors that require grad are trained through the encoder.
    """
    rows: list[int] = []
    cols: list[int] = []
    values: list[torch.Tensor] = []
    for r, row in enumerate(slots):
        for p, slot in enumerate(row):
            if slot is not None:
                rows.append(r)
                cols.append(p)
                values.append(vectors[slot[0]][slot[1]])
    if not rows:
        yield
        return

    import torch

    def replace(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        index = (torch.tensor(rows, device=output.device), torch.tensor(cols, device=output.device))
        return output.index_put(index, torch.stack(values).to(output.device, output.dtype))

    handle = text_encoder.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()
