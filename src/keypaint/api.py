"""`keypaint.Painter`: the core `Painter` with the whole product handed in, for Python callers.

The core Painter is handed what lives above it (STYLE.md point 11): the built-in model, the best-of
scorer, and how a picture is written. The CLI and the server hand these themselves; this subclass does it
for the Python API, so that

    painter = keypaint.Painter.load()          # the built-in model, with its LoRAs and frozen bundle
    [result] = painter.generate(GenerationParams(prompt="red apple", best_of=4))
    result.save("apple.png")                   # marked, with its parameters

works without knowing where those parts are. Anything handed in explicitly wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keypaint.builtin import MODEL
from keypaint.core.painter import Painter as CorePainter
from keypaint.scorer.best_of import ShippedScorer

if TYPE_CHECKING:
    from keypaint.core.result import GeneratedImage
    from keypaint.models.loaded import LoadedModel
    from keypaint.provenance.settings import ProvenanceSettings


def save_result(result: GeneratedImage, path: Path, *, provenance: ProvenanceSettings | None = None) -> Path:
    """`GeneratedImage.save`: what `keypaint generate` writes (`outputs.results.save_generated_as`)."""
    from keypaint.outputs.results import save_generated_as

    return save_generated_as(result, path, provenance=provenance)


class Painter(CorePainter):
    """A `keypaint.core.painter.Painter` handed the built-in model, the shipped best-of scorer and the
    writer behind `GeneratedImage.save`."""

    def __init__(self, model: LoadedModel | None = None, **kwargs: Any) -> None:
        kwargs["builtin"] = kwargs.get("builtin") or MODEL
        kwargs["scorer"] = kwargs.get("scorer") or ShippedScorer(kwargs.get("device"))
        kwargs["writer"] = kwargs.get("writer") or save_result
        super().__init__(model, **kwargs)

    @classmethod
    def load(cls, model: str | Path | None = None, **kwargs: Any) -> Painter:
        kwargs["builtin"] = kwargs.get("builtin") or MODEL
        painter = super().load(model, **kwargs)
        assert isinstance(painter, Painter)
        return painter
