"""Quality guard for the shipped model: the scorer finds the asked label among all 1,639 emoji labels.

Seeded, 20 steps, the defaults a user gets. A model change that stops drawing what the keywords say
fails here, not in a user's hands.
"""

from __future__ import annotations

from importlib import resources

import pytest

from keypaint import GenerationParams, Painter
from keypaint.scorer import Scorer

PROMPTS = ["red apple", "red heart", "dog face", "snowman", "grinning face", "ghost"]


@pytest.fixture(scope="module")
def labels() -> list[str]:
    text = (resources.files("keypaint.scorer") / "weights" / "labels.txt").read_text(encoding="utf-8")
    return text.splitlines()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_scorer_ranks_the_asked_label_in_its_top_5(
    prompt: str, labels: list[str], painter: Painter, scorer: Scorer
) -> None:
    [result] = painter.generate(GenerationParams(prompt=prompt, seed=0, steps=20))
    scores = scorer.score([result.image], labels)[0]
    rank = int((scores > scores[labels.index(prompt)]).sum())
    top = [labels[i] for i in scores.topk(5).indices.tolist()]
    assert rank < 5, f"{prompt!r} ranked {rank}; top 5: {top}"


@pytest.fixture(scope="module")
def painter() -> Painter:
    return Painter.load(device="cpu")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()
