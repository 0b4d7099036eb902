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

import torch
from transformers import PreTrainedModel

TOKEN_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,39}")  # what a trigger word may look like

Slot = tuple[str, int] | None  # (trigger in lower case, vector index) for a placeholder token, else None


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


def trigger_regex(tokens: Sequence[str]) -> re.Pattern[str] | None:
    """Matches any trigger as a whole word, ignoring case (both CLIP and MiniLM lower-case prompts)."""
    if not tokens:
        return None
    alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


def split_triggers(text: str, pattern: re.Pattern[str] | None) -> list[str | tuple[str]]:
    """`text` as plain pieces (str) and trigger words (a 1-tuple holding the trigger in lower case)."""
    if pattern is None:
        return [text]
    parts: list[str | tuple[str]] = []
    start = 0
    for match in pattern.finditer(text):
        if match.start() > start:
            parts.append(text[start : match.start()])
        parts.append((match.group(0).lower(),))
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


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

    def replace(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        index = (torch.tensor(rows, device=output.device), torch.tensor(cols, device=output.device))
        return output.index_put(index, torch.stack(values).to(output.device, output.dtype))

    handle = text_encoder.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()
