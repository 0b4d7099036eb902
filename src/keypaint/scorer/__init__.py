"""The scorer: "is this the picture the keywords asked for?" (CLIP-style, trained on keypaint's data).

Names are imported on first use, so handing a Painter the `ShippedScorer` imports no PyTorch until a
best-of pick needs the scorer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ShippedScorer": "keypaint.scorer.best_of",
    "pick_best": "keypaint.scorer.best_of",
    "Scorer": "keypaint.scorer.model",
    "ScorerConfig": "keypaint.scorer.model",
    "ScorerNet": "keypaint.scorer.model",
}

__all__ = ["Scorer", "ScorerConfig", "ScorerNet", "ShippedScorer", "pick_best"]

if TYPE_CHECKING:
    from keypaint.scorer.best_of import ShippedScorer, pick_best
    from keypaint.scorer.model import Scorer, ScorerConfig, ScorerNet


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keypaint.scorer' has no attribute {name!r}")
