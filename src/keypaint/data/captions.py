"""Keyword captions: how emoji and icon records are captioned, and how captions vary while training.

keypaint prompts are comma-separated keywords in any order, so training captions are too: the label,
its CLDR tags (an icon's categories), and a style keyword (an icon also has look keywords such as "line
icon"). Shuffling and subsampling them teaches order-independence; empty captions (caption dropout)
train the unconditional branch used by classifier-free guidance. An icon's style and look keywords are
never dropped, so a prompt without a style keyword only ever saw emoji: it keeps drawing a colour emoji.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class Captioned(Protocol):
    """Anything with a caption and extra fields, e.g. `keypaint.data.folder.Record`."""

    @property
    def caption(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, Any]: ...


def style_keyword(style: str) -> str:
    """The caption keyword for a style id: "fluent-flat" -> "fluent flat style"."""
    return f"{style.replace('-', ' ').replace('_', ' ')} style"


def unique_keywords(words: Iterable[str]) -> list[str]:
    """Keywords in first-seen order, trimmed, lowercase-compared, empties dropped."""
    seen: set[str] = set()
    out = []
    for word in words:
        word = word.strip()
        if word and word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def emoji_caption(label: str, tags: Sequence[str], style: str) -> str:
    """The stored caption: "red apple, apple, diet, food, fruit, ..., noto style"."""
    return ", ".join(unique_keywords([label, *tags, style_keyword(style)]))


def icon_caption(label: str, tags: Sequence[str], style: str, looks: Sequence[str]) -> str:
    """The stored caption: "arrow left, arrows, tabler outline style, line icon"."""
    return ", ".join(unique_keywords([label, *tags, style_keyword(style), *looks]))


def augment(record: Captioned, rng: random.Random, drop_prob: float = 0.1, *,
            style_drop: float = 0.0, all_tags: float = 0.0) -> str:
    """A training-time caption: shuffled keywords, a random subset of tags, label and style kept.

    With probability `drop_prob` the caption is "" (caption dropout for classifier-free guidance).
    With probability `style_drop` the style keyword is left out (so plain keywords draw well too), and
    with probability `all_tags` every tag is kept (the caption keyword expansion gives at inference).
    Icon records (`kind` "icon") always keep their style and `looks` keywords. Records without
    `label`/`style` fields (plain .txt captions) only get their keywords shuffled.
    """
    for name, value in (("drop_prob", drop_prob), ("style_drop", style_drop), ("all_tags", all_tags)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if rng.random() < drop_prob:
        return ""
    fields = record.fields
    label, style = fields.get("label"), fields.get("style")
    if isinstance(label, str) and isinstance(style, str):
        tags = [t for t in unique_keywords(fields.get("tags") or []) if t.lower() != label.lower()]
        if all_tags and rng.random() < all_tags:
            kept = list(tags)
        else:
            kept = rng.sample(tags, rng.randint(0, len(tags)))
        looks = [w for w in fields.get("looks") or [] if isinstance(w, str)]
        icon = fields.get("kind") == "icon"
        styled = icon or not (style_drop and rng.random() < style_drop)
        words = unique_keywords([label, *kept, *([style_keyword(style), *looks] if styled else [])])
    else:
        words = unique_keywords(record.caption.split(","))
    rng.shuffle(words)
    return ", ".join(words)
