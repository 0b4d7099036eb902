"""Keyword expansion: known keywords bring their trained tags; everything else passes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keypaint.builtin import VOCABULARY, WEIGHTS_DIR
from keypaint.errors import ModelError
from keypaint.keywords.vocabulary import Vocabulary

VOCAB = Vocabulary.from_pairs(
    [("red apple", ["apple", "fruit", "red", "Red Apple"]), ("ghost", ["boo", "creature", "face"])],
    source="test",
)


def test_a_known_keyword_is_followed_by_its_tags() -> None:
    assert VOCAB.expand("red apple, noto style").prompt == "red apple, apple, fruit, red, noto style"


def test_case_and_spacing_do_not_matter_and_tags_are_not_repeated() -> None:
    assert VOCAB.expand("Red  Apple, fruit").prompt == "Red  Apple, apple, red, fruit"
    expanded = "ghost, boo, creature, red apple, apple, fruit, red, face"
    assert VOCAB.expand("ghost, red apple, face").prompt == expanded


def test_unknown_keywords_emphasis_and_empty_prompts_pass_unchanged() -> None:
    for prompt in ["cat with hat", "(red apple:1.3), sky", "", "  red apple  apple"]:
        assert VOCAB.expand(prompt).prompt == prompt
    assert VOCAB.expand("a  rocket ,ghost").prompt == "a  rocket, ghost, boo, creature, face"


def test_a_tag_equal_to_its_label_is_dropped_and_the_first_label_wins() -> None:
    vocab = Vocabulary.from_pairs([("sun", ["Sun", "sunny"]), ("SUN", ["other"])])
    assert vocab.related == {"sun": ("sunny",)}
    assert "Sun" in vocab and "moon" not in vocab and len(vocab) == 1


def test_save_and_load_round_trip_one_keyword_per_line(tmp_path: Path) -> None:
    path = tmp_path / "keywords.json"
    VOCAB.save(path)
    assert Vocabulary.load(path) == VOCAB
    assert path.read_text(encoding="utf-8").count("\n") == len(VOCAB) + 3
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a readable keyword vocabulary"),
        ('{"format": "other", "labels": {}}', "not a keyword vocabulary"),
        ('{"format": "keypaint-vocabulary/1", "labels": {"sun": "hot"}}', "must be a list of strings"),
    ],
)
def test_a_broken_vocabulary_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keywords.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=message) as err:
        Vocabulary.load(path)
    assert str(path) in str(err.value)


def test_the_built_in_vocabulary_knows_every_label_the_scorer_ranks() -> None:
    vocab = Vocabulary.load(WEIGHTS_DIR / VOCABULARY)
    labels = (WEIGHTS_DIR.parent.parent / "scorer" / "weights" / "labels.txt").read_text(encoding="utf-8")
    assert all(label in vocab for label in labels.splitlines())
    assert vocab.expand("red apple").prompt == "red apple, apple, diet, food, fruit, health, red, ripe"
    assert "emojibase-data@" in vocab.source
    data = json.loads((WEIGHTS_DIR / VOCABULARY).read_text(encoding="utf-8"))
    assert data["format"] == "keypaint-vocabulary/1"
