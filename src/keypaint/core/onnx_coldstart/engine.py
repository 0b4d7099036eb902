"""`ColdStartEngine`: the `Engine` that paints from the built-in model's frozen bundle (no PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keypaint.keywords.vocabulary import expansion_record

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from keypaint.core.engine import StepReport, StopCheck
    from keypaint.core.onnx_coldstart.model import ColdStartModel, FrozenJob
    from keypaint.core.params import GenerationParams


@dataclass
class FrozenRequest:
    """A request the bundle covers: one prepared job per batch size it runs."""

    params: GenerationParams
    jobs: dict[int, FrozenJob]
    extra: dict[str, Any] = field(default_factory=dict)


class ColdStartEngine:
    """Runs covered requests through a `ColdStartModel`: fp32 on the CPU."""

    device = "cpu"
    dtype = "fp32"

    def __init__(self, model: ColdStartModel) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def sha256(self) -> str:
        return self.model.sha256

    @property
    def native_size(self) -> int:
        return self.model.native_size

    def prepare(self, params: GenerationParams) -> FrozenRequest | None:
        prompt, extra = params.prompt, {}
        if params.expand_keywords:
            expansion = self.model.expand(params.prompt)
            prompt, extra = expansion.prompt, expansion_record(params.prompt, expansion)
        jobs = {}
        for size in {params.batch_size, params.total_images - (params.batch_count - 1) * params.batch_size}:
            job = self.model.prepare(params, prompt, size)
            if job is None:
                return None
            jobs[size] = job
        return FrozenRequest(params, jobs, extra)

    def run_batch(self, job: FrozenRequest, seeds: list[int], on_step: StepReport | None,
                  should_stop: StopCheck | None) -> list[Image.Image]:
        steps = job.params.steps

        def on_latents(k: int, latents: np.ndarray) -> None:
            if on_step is not None:
                on_step(k + 1, steps, latents, None)

        return self.model.run(job.jobs[len(seeds)], seeds, on_latents, should_stop)

    def finish(self, job: FrozenRequest) -> None:
        pass
