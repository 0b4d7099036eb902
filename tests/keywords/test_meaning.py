"""Keywords by meaning: a word that is no label finds the nearest label by sentence embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keypaint.errors import ModelError
from keypaint.keywords.meaning import GENERIC, MeaningIndex, eligible, mean_pooled
from keypaint.keywords.vocabulary import Vocabulary, expansion_record

# A toy embedding: each text's vector is its position in this table (unit axes), so nearness is exact.
AXES = {"hamburger": 0, "cheeseburger": 0, "rocket": 1, "spacecraft": 1, "cat face": 2}


def embed(texts: list[str]) -> np.ndarray:
    """Texts arrive inside the index's template; unknown words point between every axis (no match)."""
    out = np.full((len(texts), 4), 0.5, dtype=np.float32)
    for i, text in enumerate(texts):
        word = text.removeprefix("a picture of a ")
        if word in AXES:
            out[i] = 0
            out[i, AXES[word]] = 1
    return out


VOCAB = Vocabulary.from_pairs(
    [("hamburger", ["burger", "food"]), ("rocket", ["space"]), ("cat face", ["cat"])]
)
INDEX = MeaningIndex.build(["hamburger", "rocket", "cat face"], ["hamburger", "rocket", "cat face"], embed)
MEANT = Vocabulary(VOCAB.related, meaning=INDEX)


def test_a_word_that_is_no_label_brings_the_nearest_label_and_its_tags() -> None:
    expansion = MEANT.expand("cheeseburger, noto style", embed)
    assert expansion.prompt == "cheeseburger, hamburger, burger, food, noto style"
    assert [str(m) for m in expansion.matches] == ["cheeseburger -> hamburger"]
    assert expansion.matches[0].score == pytest.approx(1.0)


def test_several_keywords_each_find_their_label_and_known_words_stay_exact() -> None:
    expansion = MEANT.expand("spacecraft, cheeseburger, cat face", embed)
    assert expansion.prompt == ("spacecraft, rocket, space, cheeseburger, hamburger, burger, food, "
                                "cat face, cat")
    assert expansion.note == "spacecraft -> rocket; cheeseburger -> hamburger"


def test_below_the_threshold_without_embed_or_index_nothing_is_matched() -> None:
    assert MEANT.expand("lorem ipsum", embed).prompt == "lorem ipsum"  # 0.5 cosine: under 0.6
    assert MEANT.expand("cheeseburger").prompt == "cheeseburger"  # no embed function: exact labels only
    assert VOCAB.expand("cheeseburger", embed).prompt == "cheeseburger"  # no index
    assert MEANT.expand("", embed).matches == ()


def test_syntax_styles_generic_words_tags_and_adapter_names_are_never_matched() -> None:
    known = MEANT.known
    assert "burger" in known and "hamburger" in known
    for word in ["(cheeseburger:1.2)", "<lora:x:1>", "noto style", "masterpiece", "best quality", "photo",
                 "burger", "123"]:
        assert not eligible(word, known), word
    assert eligible("cheeseburger", known) and "photo" in GENERIC
    assert MEANT.expand("cheeseburger", embed, skip=["cheeseburger"]).matches == ()
    assert MEANT.expand("big cheeseburger style", embed).matches == ()


def test_the_picture_records_the_prompt_used_and_the_matches() -> None:
    expansion = MEANT.expand("cheeseburger", embed)
    assert expansion_record("cheeseburger", expansion) == {
        "Keywords used": "cheeseburger, hamburger, burger, food",
        "Keyword meanings": "cheeseburger -> hamburger",
    }
    assert expansion_record("x", MEANT.expand("x", embed)) == {}


def test_the_index_round_trips_through_its_int8_file(tmp_path: Path) -> None:
    INDEX.save(tmp_path / "meaning.safetensors")
    again = MeaningIndex.load(tmp_path / "meaning.safetensors")
    assert again.entries == INDEX.entries and again.labels == INDEX.labels
    assert again.threshold == INDEX.threshold and again.template == INDEX.template
    np.testing.assert_allclose(again.vectors, INDEX.vectors, atol=0.01)
    assert [m and m.label for m in again.match(["spacecraft", "nothing"], embed)] == ["rocket", None]


def test_a_damaged_or_foreign_index_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"vectors": np.zeros((2, 4), np.int8)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="not a meaning index"):
        MeaningIndex.load(tmp_path / "other.safetensors")
    save_file({"vectors": np.zeros((3, 4), np.int8)}, str(tmp_path / "short.safetensors"),
              metadata={"format": "keypaint-meaning/1", "entries": '["a"]', "labels": '["a"]',
                        "threshold": "0.6"})
    with pytest.raises(ModelError, match="3 vectors for 1 entries"):
        MeaningIndex.load(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError):
        MeaningIndex.load(tmp_path / "junk.safetensors")


def test_mean_pooling_ignores_padding_and_returns_unit_rows() -> None:
    hidden = np.array([[[1, 0], [3, 0], [100, 100]]], dtype=np.float32)
    pooled = mean_pooled(hidden, np.array([[1, 1, 0]]))
    np.testing.assert_allclose(pooled, [[1.0, 0.0]])
