"""`pack vocabulary` on emoji-and-icons data: icon names join the emoji labels, emoji keep their tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from keypaint.builtin.pack import pack_vocabulary
from keypaint.errors import ModelError
from keypaint.keywords.vocabulary import Vocabulary

ROWS = [
    {"file_name": "noto_1f34e.png", "text": "red apple, apple, fruit, noto style", "label": "red apple",
     "tags": ["apple", "fruit"], "style": "noto", "kind": "emoji"},
    {"file_name": "noto_2764.png", "text": "red heart, love, noto style", "label": "red heart",
     "tags": ["love"], "style": "noto", "kind": "emoji"},
    {"file_name": "tabler_arrow-left.png", "text": "arrow left, arrows, tabler outline style, line icon",
     "label": "arrow left", "tags": ["arrows"], "style": "tabler-outline", "kind": "icon"},
    {"file_name": "ph_red-heart.png", "text": "red heart, shapes, ph style, line icon", "label": "red heart",
     "tags": ["shapes"], "style": "ph", "kind": "icon"},
]


def write_data(root: Path, rows: list[dict], sources: dict | None) -> Path:
    train = root / "train"
    train.mkdir(parents=True)
    for row in rows:
        Image.new("RGB", (8, 8), "white").save(train / row["file_name"])
    (train / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if sources is not None:
        (root / "sources.json").write_text(json.dumps(sources))
    return train


def test_icon_names_join_the_vocabulary_and_emoji_tags_win(tmp_path: Path) -> None:
    sources = {
        "emojibase": {"package": "emojibase-data", "version": "17.0.0", "license": {"spdx": "MIT"}},
        "icon_sets": [{"prefix": "tabler"}, {"prefix": "ph"}],
    }
    train = write_data(tmp_path / "data", ROWS, sources)
    vocabulary = pack_vocabulary(train, tmp_path)
    assert Vocabulary.load(tmp_path / "keywords.json") == vocabulary
    assert dict(vocabulary.related) == {
        "red apple": ("apple", "fruit"),
        "red heart": ("love",),  # the emoji's CLDR tags, not the icon's category
        "arrow left": ("arrows",),
    }
    assert vocabulary.source == (
        "CLDR labels and tags of emojibase-data@17.0.0 (MIT) and icon names and categories of 2 iconify sets"
    )
    expanded = vocabulary.expand("arrow left, tabler outline style").prompt
    assert expanded == "arrow left, arrows, tabler outline style"


def test_icons_alone_and_folders_without_labels(tmp_path: Path) -> None:
    train = write_data(tmp_path / "icons", ROWS[2:], {"emojibase": None, "icon_sets": [{"prefix": "ph"}]})
    vocabulary = pack_vocabulary(train, tmp_path)
    assert sorted(vocabulary.related) == ["arrow left", "red heart"]
    assert vocabulary.source == "icon names and categories of 1 iconify sets"
    plain = write_data(tmp_path / "plain", [{"file_name": "a.png", "text": "a cat"}], None)
    with pytest.raises(ModelError, match="no record has a 'label' field"):
        pack_vocabulary(plain, tmp_path)
