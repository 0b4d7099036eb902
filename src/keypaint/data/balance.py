"""Sampling weights: how a trainer draws from the emoji-and-icons data so emoji keep their quality.

Each record carries `weight`. Emoji records share `emoji_share` of the draws equally (as a build of
emoji alone would draw them); icon records share the rest, equally per icon set and uniformly within
a set, so that material-symbols' 15,000 icons do not drown maki's 200. Weights are scaled to a mean of
1.0 per split, so `torch.multinomial(weights, n, replacement=True)` (or a WeightedRandomSampler) can use
them as they are; a folder without weights draws uniformly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from keypaint.data.errors import DataError
from keypaint.data.folder import Record

EMOJI_SHARE = 0.6  # share of draws that are emoji; the rest are icons


def set_weights(rows: Sequence[dict[str, Any]], emoji_share: float = EMOJI_SHARE) -> None:
    """Write `weight` into each row (metadata.jsonl lines with `kind` and `set`/`style`) in place."""
    if not 0.0 < emoji_share < 1.0:
        raise DataError(f"emoji share must be between 0 and 1, got {emoji_share}")
    emoji = [r for r in rows if r.get("kind") != "icon"]
    icons = [r for r in rows if r.get("kind") == "icon"]
    per_set = Counter(r["set"] for r in icons)
    share = emoji_share if emoji and icons else 1.0
    for row in emoji:
        row["weight"] = share / len(emoji)
    for row in icons:
        row["weight"] = (1.0 - share if emoji else 1.0) / len(per_set) / per_set[row["set"]]
    for row in rows:
        row["weight"] = round(row["weight"] * len(rows), 6)


def record_weights(records: Sequence[Record]) -> list[float]:
    """The `weight` of each record (1.0 where absent), for a weighted sampler; bad values raise."""
    weights = []
    for record in records:
        value = record.fields.get("weight", 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise DataError(f"{record.path}: sampling weight must be a positive number, got {value!r}")
        weights.append(float(value))
    return weights
