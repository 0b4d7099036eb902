"""Quality guard for the shipped model: the scorer finds the asked labels among all 1,639 emoji labels.

Seeded, 20 steps, the defaults a user gets. A model change that stops drawing what the keywords say
fails here, not in a user's hands. Plain labels and synonym probes (words that are no label, which find
theirs by meaning) are both guarded.
"""

from __future__ import annotations

from importlib import resources

import pytest

from keypaint import GenerationParams, Painter
from keypaint.scorer import Scorer
from keypaint.scorer.evaluate import read_probes

# Twelve everyday keywords, alone (no style keyword), one picture each at seed 0, with keyword expansion
# (the default). A single picture of a stochastic model can miss where the model is sound, so the guard
# counts: the shipped model puts 10 of 12 in the scorer's top 5 (7 with --no-expand; the model before it
# 7 without expansion). A broken or untrained model gets none; 8 leaves two pictures of margin.
PROMPTS = [
    "red apple",
    "red heart",
    "dog face",
    "snowman",
    "grinning face",
    "ghost",
    "cat face",
    "sun",
    "pizza",
    "rocket",
    "banana",
    "star",
]
MIN_IN_TOP_5 = 8

# The first twelve words of the synonym probe set (keypaint.scorer.evaluate.SYNONYMS, in file order, not
# picked), each painted as typed; the scorer is asked for the label it should draw. The shipped model with
# meaning matching: 3 of 12 in the top 5 (cheeseburger, jetliner, martian); encoded as typed: none. The
# synonym goal (issue 15) is far above this: the guard only keeps the mechanism from breaking.
SYNONYMS = read_probes()[:12]
MIN_SYNONYMS_IN_TOP_5 = 2
MIN_MAPPED = 0.38  # the shipped index maps 63 of the 150 probes (0.42) to their exact label, 122 to one


@pytest.fixture(scope="module")
def labels() -> list[str]:
    text = (resources.files("keypaint.scorer") / "weights" / "labels.txt").read_text(encoding="utf-8")
    return text.splitlines()


def _rank(painter: Painter, scorer: Scorer, labels: list[str], prompt: str, label: str
          ) -> tuple[int, list[str]]:
    [result] = painter.generate(GenerationParams(prompt=prompt, seed=0, steps=20))
    scores = scorer.score([result.image], labels)[0]
    top = [labels[i] for i in scores.topk(5).indices.tolist()]
    return int((scores > scores[labels.index(label)]).sum()), top


@pytest.fixture(scope="module")
def ranks(labels: list[str], painter: Painter, scorer: Scorer) -> dict[str, tuple[int, list[str]]]:
    return {prompt: _rank(painter, scorer, labels, prompt, prompt) for prompt in PROMPTS}


def test_scorer_ranks_the_asked_label_in_its_top_5_for_most_keywords(
    ranks: dict[str, tuple[int, list[str]]],
) -> None:
    hits = [prompt for prompt, (rank, _) in ranks.items() if rank < 5]
    misses = {prompt: top for prompt, (rank, top) in ranks.items() if rank >= 5}
    assert len(hits) >= MIN_IN_TOP_5, f"{len(hits)} of {len(PROMPTS)} in the top 5; missed: {misses}"


def test_synonyms_find_their_label_by_meaning_and_are_drawn(
    labels: list[str], painter: Painter, scorer: Scorer
) -> None:
    ranks = {word: _rank(painter, scorer, labels, word, label) for word, label in SYNONYMS}
    hits = [word for word, (rank, _) in ranks.items() if rank < 5]
    misses = {word: top[:2] for word, (rank, top) in ranks.items() if rank >= 5}
    assert len(hits) >= MIN_SYNONYMS_IN_TOP_5, f"{len(hits)} of 12 in the top 5; missed: {misses}"


def test_the_meaning_index_maps_the_probe_words_to_their_labels(painter: Painter) -> None:
    """Without painting: the shipped index puts 63 of the 150 probes on their exact label."""
    probes = read_probes()
    expansions = [painter.model.expand(word) for word, _ in probes]
    exact = sum(bool(e.matches) and e.matches[0].label == label
                for e, (_, label) in zip(expansions, probes, strict=True))
    assert exact >= MIN_MAPPED * len(probes), f"{exact} of {len(probes)} probes mapped to their label"


def test_the_apple_of_the_quick_start_is_an_apple(ranks: dict[str, tuple[int, list[str]]]) -> None:
    rank, top = ranks["red apple"]
    assert rank == 0, f"README's first command draws {top[0]!r}, not a red apple"


@pytest.fixture(scope="module")
def painter() -> Painter:
    return Painter.load(device="cpu")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()
