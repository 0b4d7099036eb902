"""Weighted prompt -> fixed-size token chunks, the way A1111's `modules/sd_hijack_clip.py` builds them.

A text encoder sees at most `model_max_length` tokens (77 for CLIP). Rather than cut a longer prompt, A1111
splits it into chunks of `window - 2` tokens, wraps each as start + tokens + end + padding, encodes each on
its own and concatenates the outputs; keypaint does the same so long prompts behave as they do there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keypaint.keywords.syntax import Break, parse_prompt_attention
from keypaint.prompts.triggers import Slot, split_triggers, trigger_regex

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
# A1111's `comma_padding_backtrack` default: a full chunk breaks after a comma this close to its end.
COMMA_BACKTRACK = 20


@dataclass(frozen=True)
class SpecialTokens:
    """What a tokenizer wraps a chunk with, read from the tokenizer itself so CLIP and BERT both work."""

    start: int  # CLIP's <|startoftext|>, BERT's [CLS]
    end: int  # CLIP's <|endoftext|>, BERT's [SEP]
    pad: int  # SD 1.x pads with the end token, SD 2.x/SDXL's second tokenizer with "!", BERT with [PAD]
    comma: int | None  # where a full chunk may break early; None if "," is not one token
    window: int  # tokens the encoder sees at once, specials included

    @property
    def capacity(self) -> int:
        """Prompt tokens per chunk (75 for CLIP)."""
        return self.window - 2

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokens:
        wrapped = tokenizer("", add_special_tokens=True)["input_ids"]
        if len(wrapped) != 2:
            raise ValueError(f"{type(tokenizer).__name__} does not wrap text in one start and one end token")
        comma = tokenizer(",", add_special_tokens=False)["input_ids"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else wrapped[1]
        return cls(start=wrapped[0], end=wrapped[1], pad=pad, comma=comma[0] if len(comma) == 1 else None,
                   window=int(tokenizer.model_max_length))


@dataclass
class Chunk:
    """One encoder window: token ids, the weight of each token, and which positions are not padding."""

    ids: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    length: int = 0  # start + prompt tokens + end; the rest is padding (masked for BERT)
    slots: list[Slot] = field(default_factory=list)  # per id: the embedding vector it stands for, if any

    @property
    def has_vectors(self) -> bool:
        return any(slot is not None for slot in self.slots)


def wrap(body: list[int], weights: list[float], special: SpecialTokens, slots: list[Slot] | None = None
         ) -> Chunk:
    """start + body + end, padded to the window; specials and padding have weight 1."""
    pad = special.capacity - len(body)
    return Chunk(
        ids=[special.start, *body, special.end] + [special.pad] * pad,
        weights=[1.0, *weights, 1.0] + [1.0] * pad,
        length=len(body) + 2,
        slots=[None, *(slots or [None] * len(body)), None] + [None] * pad,
    )


def empty_chunk(special: SpecialTokens) -> Chunk:
    """The chunk of an empty prompt: pads the shorter of prompt and negative prompt."""
    return wrap([], [], special)


def tokenize_chunks(tokenizer: PreTrainedTokenizerBase, prompt: str,
                    triggers: Mapping[str, int] | None = None) -> tuple[list[Chunk], int]:
    """Chunks for `prompt` and A1111's token count (full chunks count as `capacity`, the last as used).

    Follows A1111's `tokenize_line`: a full chunk whose last comma lies within `COMMA_BACKTRACK` tokens of
    its end is cut after that comma and the rest moves to the next chunk; `BREAK` closes the current chunk.
    `triggers` maps textual-inversion trigger words (lower case) to their vector counts: each occurrence
    becomes that many placeholder tokens whose `slots` name the vectors, kept together in one chunk.
    """
    special = SpecialTokens.of(tokenizer)
    table = dict(triggers or {})
    pattern = trigger_regex(list(table))
    pieces = parse_prompt_attention(prompt)
    split = [split_triggers(piece.text, pattern) for piece in pieces if not isinstance(piece, Break)]
    texts = [part for parts in split for part in parts if isinstance(part, str)]
    encoded = iter(tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
                   if texts else [])
    parts_of = iter(split)

    chunks: list[Chunk] = []
    body: list[int] = []
    weights: list[float] = []
    slots: list[Slot] = []
    count = 0
    last_comma = -1

    def close(is_last: bool = False) -> None:
        nonlocal body, weights, slots, count, last_comma
        count += len(body) if is_last else special.capacity
        chunks.append(wrap(body, weights, special, slots))
        body, weights, slots, last_comma = [], [], [], -1

    def push(token: int, weight: float, slot: Slot) -> None:
        nonlocal body, weights, slots, last_comma
        if slot is None and token == special.comma:
            last_comma = len(body)
        elif (len(body) == special.capacity and last_comma != -1
              and len(body) - last_comma <= COMMA_BACKTRACK):
            cut = last_comma + 1
            moved = body[cut:], weights[cut:], slots[cut:]
            body, weights, slots = body[:cut], weights[:cut], slots[:cut]
            close()
            body, weights, slots = (list(m) for m in moved)
        if len(body) == special.capacity:
            close()
        body.append(token)
        weights.append(weight)
        slots.append(slot)

    for piece in pieces:
        if isinstance(piece, Break):
            close()
            continue
        for part in next(parts_of):
            if isinstance(part, str):
                for token in next(encoded):
                    push(token, piece.weight, None)
                continue
            trigger = part[0]
            if body and len(body) + table[trigger] > special.capacity:
                close()  # an embedding's vectors stay in one chunk, as in A1111
            for k in range(table[trigger]):
                push(special.start, piece.weight, (trigger, k))  # the id is a placeholder; the hook sets it

    if body or not chunks:
        close(is_last=True)
    return chunks, count
