"""Metric functions on features with known answers, and retrieval with a trained toy scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from keypaint.scorer.metrics import frechet_distance, retrieval_accuracy, topk_accuracy
from keypaint.scorer.model import Scorer


def _gaussian(n: int = 2000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3


def test_frechet_of_identical_sets_is_zero() -> None:
    a = _gaussian()
    assert frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-6)


def test_frechet_of_two_samples_of_one_distribution_is_small() -> None:
    same = frechet_distance(_gaussian(20000, seed=2)[:10000], _gaussian(20000, seed=2)[10000:])
    shifted = frechet_distance(_gaussian(seed=2), _gaussian(seed=2) + 0.5)
    assert same < 0.1 * shifted


def test_frechet_of_a_shift_is_its_squared_norm() -> None:
    a = _gaussian()
    shift = np.linspace(-1.0, 1.0, a.shape[1])
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_of_a_scaled_set_is_the_trace_of_its_covariance() -> None:
    # cov_b = 4 cov_a, (cov_a cov_b)^(1/2) = 2 cov_a: Tr(cov_a + 4 cov_a - 4 cov_a) = Tr(cov_a)
    a = _gaussian()
    a = a - a.mean(0)
    expected = float(np.trace(np.cov(a, rowvar=False)))
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(2 * a).float()) == pytest.approx(
        expected, rel=1e-3
    )


def test_frechet_rejects_mismatched_features() -> None:
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="two samples"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_topk_of_perfect_features_is_one() -> None:
    feats = torch.nn.functional.normalize(torch.randn(10, 8), dim=-1)
    acc = topk_accuracy(feats @ feats.T, torch.arange(10), k=(1, 5))
    assert acc == {1: 1.0, 5: 1.0}


def test_topk_counts_ranks() -> None:
    similarity = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    # true columns: ranked 1st, 2nd and 1st
    acc = topk_accuracy(similarity, torch.tensor([0, 1, 2]), k=(1, 2))
    assert acc[1] == pytest.approx(2 / 3)
    assert acc[2] == 1.0


def test_retrieval_accuracy_of_trained_toy_scorer(trained: Path, squares_heldout: Path) -> None:
    scorer = Scorer.load(trained)
    files = sorted(squares_heldout.glob("*.png"))
    images = [Image.open(f).convert("RGB") for f in files]
    true_labels = [f"{f.stem.split('_')[1]} square" for f in files]
    all_labels = [*sorted(set(true_labels)), "white circle", "orange triangle"]
    acc = retrieval_accuracy(scorer, images, true_labels, all_labels, k=(1, 5))
    assert acc[1] >= 0.8
    assert acc[5] >= acc[1]
    with pytest.raises(ValueError, match="missing"):
        retrieval_accuracy(scorer, images[:1], ["pink square"], all_labels)
