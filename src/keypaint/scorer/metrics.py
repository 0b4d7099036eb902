"""Evaluation numbers in the scorer's space: keyword retrieval accuracy and a Fréchet distance.

Retrieval asks "among all labels, is the one the picture was made for ranked in the top k?" (CLIP-style
zero-shot classification with the bare label as the prompt). The Fréchet distance is FID's formula
(Heusel et al. 2017) computed on scorer image features instead of Inception pool features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
from PIL import Image

from keypaint.scorer.model import Scorer


def topk_accuracy(
    similarity: torch.Tensor, true_index: torch.Tensor, k: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Share of rows whose true column is among the k highest; `similarity` is (N, C), `true_index` (N,)."""
    if similarity.shape[0] != true_index.shape[0]:
        raise ValueError(f"{similarity.shape[0]} rows but {true_index.shape[0]} true indices")
    if similarity.shape[0] == 0:
        raise ValueError("no rows to score")
    true_score = similarity.gather(1, true_index.view(-1, 1).to(similarity.device))
    # rank = how many columns score strictly higher than the true one (ties count in the picture's favour)
    rank = (similarity > true_score).sum(dim=1)
    return {int(kk): float((rank < kk).float().mean()) for kk in k}


def retrieval_accuracy(
    scorer: Scorer,
    images: list[Image.Image],
    true_labels: Sequence[str],
    all_labels: Sequence[str],
    k: Sequence[int] = (1, 5),
) -> dict[int, float]:
    """Top-k accuracy of each picture's true label among `all_labels`, each label used alone as the prompt."""
    labels = list(dict.fromkeys(all_labels))
    index = {label: i for i, label in enumerate(labels)}
    missing = sorted({label for label in true_labels if label not in index})
    if missing:
        raise ValueError(f"true labels missing from all_labels: {missing[:5]}")
    similarity = scorer.image_features(images) @ scorer.text_features(labels).T
    true_index = torch.tensor([index[label] for label in true_labels], dtype=torch.long)
    return topk_accuracy(similarity, true_index, k)


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to two feature sets."""
    a = _as_float64(feats_a)
    b = _as_float64(feats_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays of the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least two samples on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        # singular product (fewer samples than dimensions): regularise as pytorch-fid does
        offset = np.eye(a.shape[1]) * 1e-6
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def _as_float64(feats: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().float().cpu().numpy()
    return np.asarray(feats, dtype=np.float64)
