"""`--best-of N`: keep the candidate picture the scorer rates closest to the keywords."""

from __future__ import annotations

import torch
from PIL import Image

from keypaint.scorer.model import Scorer


def pick_best(scorer: Scorer, images: list[Image.Image], prompt: str) -> tuple[int, torch.Tensor]:
    """(index of the best-matching picture, cosine score of every picture), scores on the CPU."""
    if not images:
        raise ValueError("pick_best needs at least one picture")
    scores = scorer.score(images, [prompt])[:, 0].float().cpu()
    return int(scores.argmax()), scores
