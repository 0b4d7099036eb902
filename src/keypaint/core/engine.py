"""`Engine`: what runs a request's batches for a `Painter`, whichever machinery paints.

Two engines implement it: `DiffusersEngine` (core.diffusers_engine: the loaded model through diffusers'
pipelines) and `ColdStartEngine` (core.onnx_coldstart.engine: the built-in model's frozen ONNX bundle,
painted with ONNX Runtime and numpy, no PyTorch). The Painter asks its engines in turn to `prepare` a
request, then runs the batches of the first one that covers it, without knowing which one it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

    from keypaint.core.params import GenerationParams

# (1-based step, steps this batch runs, latents after the step, the step's x_0 estimate or None)
StepReport = Callable[[int, int, Any, Any], None]
StopCheck = Callable[[], bool]


@runtime_checkable
class Job(Protocol):
    """A request an engine has prepared: its (resolved) params and what its pictures record beside them."""

    params: GenerationParams
    extra: dict[str, Any]


J = TypeVar("J", bound=Job)


@runtime_checkable
class Engine(Protocol[J]):
    """Paints prepared requests one batch at a time; picture i of a batch starts from seeds[i]'s noise."""

    @property
    def name(self) -> str: ...  # the model's name and hash, recorded with each picture

    @property
    def sha256(self) -> str: ...

    @property
    def native_size(self) -> int: ...

    @property
    def device(self) -> str: ...  # as recorded with each picture ("cpu", "fp32")

    @property
    def dtype(self) -> str: ...

    def prepare(self, params: GenerationParams) -> J | None:
        """The job for resolved `params` (keywords expanded, prompt encoded), or None if this engine cannot
        paint it (the Painter then asks the next one)."""
        ...

    def run_batch(self, job: J, seeds: list[int], on_step: StepReport | None,
                  should_stop: StopCheck | None) -> list[Image.Image]:
        """One batch of `job`, one picture per seed; raises `Cancelled` when `should_stop` says so."""
        ...

    def finish(self, job: J) -> None:
        """After all of `job`'s batches ran (not after a cancelled run)."""
        ...
