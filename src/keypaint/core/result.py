"""`GeneratedImage`: one picture `Painter.generate` made, with what re-makes it, and its `save`.

Core writes no files: `save` calls the writer its Painter was handed (`keypaint.Painter` hands
`outputs.results.save_generated_as`, through `keypaint.api`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from keypaint.core.params import GenerationParams
from keypaint.errors import OutputError

if TYPE_CHECKING:
    from keypaint.provenance.settings import ProvenanceSettings

    ResultWriter = Callable[..., Path]  # (result, path, *, provenance) -> the path written


@dataclass
class GeneratedImage:
    """One picture and everything needed to make it again."""

    image: Image.Image
    seed: int
    params: GenerationParams  # params that re-make exactly this picture alone (its seed, batch of one)
    index: int  # position within the run
    model_name: str
    model_hash: str | None
    device: str
    dtype: str
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a best-of score
    writer: ResultWriter | None = field(default=None, repr=False, compare=False)  # what `save` calls

    def save(self, path: str | Path, *, provenance: ProvenanceSettings | None = None) -> Path:
        """Write the picture as `path` (.png, .jpg or .webp) exactly as `keypaint generate` writes it.

        The file carries the A1111 infotext, the reproduction JSON and the AI marks (XMP, invisible
        watermark, C2PA; `provenance` None means all on); it is written atomically and never replaces
        an existing file (`OutputError`). `image.save` would write the bare pixels only.
        """
        if self.writer is None:
            raise OutputError("this picture's Painter was handed no writer: paint with keypaint.Painter, or "
                              "save it with keypaint.outputs.results.save_generated_as(result, path)")
        return self.writer(self, Path(path), provenance=provenance)
