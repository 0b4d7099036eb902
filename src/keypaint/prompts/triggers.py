"""Trigger words of textual-inversion embeddings in prompt text (no tensors: the tokenizer side only)."""

from __future__ import annotations

import re
from collections.abc import Sequence

Slot = tuple[str, int] | None  # (trigger in lower case, vector index) for a placeholder token, else None


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
