"""`FinetuneSpec`: a fine-tuning run as the server queues it, and the one place it becomes a `FinetuneConfig`.

POST /api/finetune (server.finetune_api) stores the pictures in the job's own folder,
`<home>/finetune/jobs/<job id>/pictures`, and queues this spec; the worker (server.finetune_runner) reads it
back and trains into `<home>/finetune/jobs/<job id>/run`. The stored spec names no path on the server, so
GET /api/jobs can show it as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from keypaint.finetune.config import FinetuneConfig, Method
from keypaint.models.registry import keypaint_home


@dataclass(frozen=True)
class FinetuneSpec:
    """What the client asked for; `model` is the server's model the run trains on (resolved at submit)."""

    token: str
    method: str = FinetuneConfig.method.value  # the CLI's defaults are the server's
    steps: int = FinetuneConfig.steps
    rank: int = FinetuneConfig.rank
    lr: float | None = None  # None: the method's default
    class_prompt: str | None = None  # DreamBooth's class ("dog", "emoji")
    model: str | None = None
    pictures: list[str] = field(default_factory=list)  # the stored files' names, captions included

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "request": {k: v for k, v in asdict(self).items() if k != "pictures"}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FinetuneSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def config(self, home: Path | None, job_id: str, sample_every: int = 0) -> FinetuneConfig:
        """The run: the pictures and run folder of job `job_id`, the output in the home's loras (or
        embeddings) folder, a sample picture every `sample_every` steps and at the last (0: none).
        `Method(...)` raises ValueError for a method this keypaint does not know."""
        folder = job_folder(home, job_id)
        return FinetuneConfig(
            images=folder / "pictures",
            token=self.token,
            method=Method(self.method),
            steps=self.steps,
            rank=self.rank,
            lr=self.lr,
            class_prompt=self.class_prompt,
            run_dir=folder / "run",
            sample_every=sample_every,
            home=home,
        )


def job_folder(home: Path | None, job_id: str) -> Path:
    """Where job `job_id` keeps its pictures and its run (a new folder per job: nothing is overwritten)."""
    return (home or keypaint_home()) / "finetune" / "jobs" / job_id
