"""`--best-of N`: keep the candidate picture the scorer rates closest to the keywords."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # PyTorch and the scorer's network load with the first pick, not with this module
    import torch
    from PIL import Image

    from keypaint.scorer.model import Scorer


def pick_best(scorer: Scorer, images: list[Image.Image], prompt: str) -> tuple[int, torch.Tensor]:
    """(index of the best-matching picture, cosine score of every picture), scores on the CPU."""
    if not images:
        raise ValueError("pick_best needs at least one picture")
    scores = scorer.score(images, [prompt])[:, 0].float().cpu()
    return int(scores.argmax()), scores


class ShippedScorer:
    """The shipped scorer, loaded on the first best-of pick onto `device` (None: auto, as the model loads):
    what the CLI and the server hand their Painter."""

    def __init__(self, device: str | None = None) -> None:
        self._device = device
        self._scorer: Scorer | None = None

    def pick_best(self, images: list[Image.Image], prompt: str) -> tuple[int, torch.Tensor]:
        if self._scorer is None:
            from keypaint.core.devices import pick_device
            from keypaint.scorer.model import Scorer

            self._scorer = Scorer.load(None, device=pick_device(self._device))
        return pick_best(self._scorer, images, prompt)
