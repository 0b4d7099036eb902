"""The scorer: "is this the picture the keywords asked for?" (CLIP-style, trained on keypaint's data)."""

from keypaint.scorer.best_of import ShippedScorer, pick_best
from keypaint.scorer.model import Scorer, ScorerConfig, ScorerNet

__all__ = ["Scorer", "ScorerConfig", "ScorerNet", "ShippedScorer", "pick_best"]
