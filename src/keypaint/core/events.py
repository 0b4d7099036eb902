"""What a `Painter` reports while it runs: one `StepEvent` per denoising step, and `Interrupted` when a
run stops after some of its pictures finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from keypaint.core.result import GeneratedImage
from keypaint.errors import Cancelled

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StepEvent:
    """One finished denoising step, reported to `on_step` callbacks (progress bars, previews, explain)."""

    step: int  # 1-based step within the current batch
    steps: int  # steps this batch runs (img2img runs fewer: strength x steps)
    batch: int  # 0-based batch number
    batches: int
    # x_t after this step: a tensor on the model's device (a numpy array on the frozen path)
    latents: torch.Tensor = field(repr=False)
    denoised: torch.Tensor | None = field(default=None, repr=False)  # the step's x_0 estimate (fp32)


class Interrupted(Cancelled):
    """A run stopped after some of its batches finished: their pictures are in `done` (A1111 returns them)."""

    def __init__(self, done: list[GeneratedImage]) -> None:
        super().__init__(f"generation cancelled after {len(done)} picture(s)")
        self.done = done


StepCallback = Callable[[StepEvent], None]
StopCheck = Callable[[], bool]


def raise_with_finished(done: list[GeneratedImage]) -> NoReturn:
    """Re-raise the `Cancelled` being handled, as `Interrupted` carrying `done` if any picture finished."""
    if done:
        raise Interrupted(list(done)) from None
    raise Cancelled("generation cancelled") from None


def reporter(on_step: StepCallback | None, batch: int, batches: int) -> Any:
    """A batch's step report as `StepEvent`s for `on_step` (None when nobody listens)."""
    if on_step is None:
        return None

    def report(step: int, steps: int, latents: Any, denoised: Any) -> None:
        on_step(StepEvent(step, steps, batch, batches, latents, denoised))

    return report
