"""Caption building and training-time augmentation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from keypaint.data import Record, augment, emoji_caption
from keypaint.data.captions import icon_caption, style_keyword

APPLE_FIELDS = {"label": "red apple", "tags": ["apple", "diet", "fruit", "red", "red apple"], "style": "noto"}
APPLE = Record(Path("a.png"), "red apple, apple, diet, fruit, red, noto style", APPLE_FIELDS)


def test_emoji_caption_is_label_tags_style_without_repeats() -> None:
    assert emoji_caption("red apple", ["apple", "Red Apple", "red", "apple"], "noto") == (
        "red apple, apple, red, noto style"
    )
    assert style_keyword("fluent-flat") == "fluent flat style"


def test_augment_keeps_label_and_style_and_subsamples_tags() -> None:
    rng = random.Random(0)
    orders, sizes = set(), set()
    for _ in range(300):
        words = augment(APPLE, rng, drop_prob=0.0).split(", ")
        assert "red apple" in words and "noto style" in words
        assert set(words) <= {"red apple", "apple", "diet", "fruit", "red", "noto style"}
        assert len(words) == len(set(words))
        orders.add(tuple(words))
        sizes.add(len(words))
    assert sizes == {2, 3, 4, 5, 6}  # from no tags to all four
    assert len(orders) > 50


def test_caption_dropout_rate_is_the_parameter() -> None:
    rng = random.Random(1)
    empty = sum(augment(APPLE, rng) == "" for _ in range(4000)) / 4000
    assert 0.08 < empty < 0.12
    assert augment(APPLE, rng, drop_prob=1.0) == ""
    with pytest.raises(ValueError, match="drop_prob"):
        augment(APPLE, rng, drop_prob=1.5)


def test_same_seed_same_captions() -> None:
    first = [augment(APPLE, random.Random(7)) for _ in range(3)]
    assert first == [augment(APPLE, random.Random(7)) for _ in range(3)]


def test_plain_text_captions_are_shuffled_not_cut() -> None:
    record = Record(Path("x.png"), "cat, sitting, window,  , cat", {})
    rng = random.Random(3)
    outputs = {augment(record, rng, drop_prob=0.0) for _ in range(50)}
    assert all(sorted(o.split(", ")) == ["cat", "sitting", "window"] for o in outputs)
    assert len(outputs) > 1


ARROW_FIELDS = {
    "label": "arrow left", "tags": ["arrows"], "style": "tabler-outline", "kind": "icon",
    "looks": ["line icon"],
}
ARROW = Record(Path("t.png"), "arrow left, arrows, tabler outline style, line icon", ARROW_FIELDS)


def test_icon_caption_adds_look_keywords() -> None:
    assert icon_caption("arrow left", ["arrows"], "tabler-outline", ["line icon"]) == ARROW.caption


def test_icons_always_keep_style_and_look_while_emoji_may_lose_style() -> None:
    rng = random.Random(5)
    for _ in range(200):
        words = augment(ARROW, rng, drop_prob=0.0, style_drop=1.0).split(", ")
        assert {"arrow left", "tabler outline style", "line icon"} <= set(words)
    emoji = augment(APPLE, rng, drop_prob=0.0, style_drop=1.0).split(", ")
    assert "noto style" not in emoji and "red apple" in emoji
