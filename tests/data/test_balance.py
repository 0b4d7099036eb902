"""Sampling weights: emoji keep their share, icon sets share the rest equally."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypaint.data import DataError, Record
from keypaint.data.balance import record_weights, set_weights


def test_emoji_share_and_equal_icon_sets() -> None:
    rows = [{"kind": "emoji", "set": "noto"} for _ in range(10)]
    rows += [{"kind": "icon", "set": "tabler"} for _ in range(30)] + [{"kind": "icon", "set": "maki"}]
    set_weights(rows, emoji_share=0.5)
    assert sum(r["weight"] for r in rows) == pytest.approx(len(rows), rel=1e-5)
    emoji = sum(r["weight"] for r in rows if r["kind"] == "emoji")
    maki = sum(r["weight"] for r in rows if r["set"] == "maki")
    tabler = sum(r["weight"] for r in rows if r["set"] == "tabler")
    assert emoji / len(rows) == pytest.approx(0.5, abs=1e-5)
    assert maki == pytest.approx(tabler, rel=1e-4)  # one maki icon weighs as much as thirty tabler ones


def test_one_kind_alone_is_drawn_uniformly_per_set() -> None:
    emoji = [{"kind": "emoji", "set": "noto"} for _ in range(4)]
    set_weights(emoji)
    assert [r["weight"] for r in emoji] == [1.0] * 4
    with pytest.raises(DataError, match="emoji share"):
        set_weights(emoji, emoji_share=1.0)


def test_record_weights_default_to_one_and_refuse_bad_values() -> None:
    records = [Record(Path("a.png"), "a", {"weight": 2.5}), Record(Path("b.png"), "b", {})]
    assert record_weights(records) == [2.5, 1.0]
    with pytest.raises(DataError, match=r"c\.png: sampling weight must be a positive number"):
        record_weights([Record(Path("c.png"), "c", {"weight": -1})])
