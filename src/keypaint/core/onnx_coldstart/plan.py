"""A sampler's whole run as linear maps: what the frozen path runs instead of a diffusers scheduler.

A deterministic sampler (DDIM, Euler, Heun, LMS, DPM++ 2M, UniPC ...) never does more than scale and add
what it was given: x_T, and the U-Net's output at each step. Every latent it produces, and every input
it gives the U-Net, is therefore a fixed linear combination of v = [x_T, eps_0, eps_1, ...], with
coefficients that depend only on the schedule and the number of steps. `record.probe_plan` reads those
coefficients off diffusers' own scheduler (it runs the scheduler on unit vectors; nothing here
re-derives a sampler's formulas) and checks them on random numbers; this module applies them with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "keypaint-sampler-plan/1"


@dataclass(frozen=True)
class SamplerPlan:
    """One sampler at one step count: U-Net timesteps, and rows of coefficients over [x_T, eps_0, ...]."""

    sampler: str
    steps: int  # what the user asked for (Heun calls the U-Net 2 x steps - 1 times)
    timesteps: tuple[float, ...]  # the t each U-Net call gets
    inputs: tuple[tuple[float, ...], ...]  # row k: the U-Net's input latent at call k
    states: tuple[tuple[float, ...], ...]  # row k: the latent after call k (the last row is x_0)

    @property
    def calls(self) -> int:
        return len(self.timesteps)

    @staticmethod
    def combine(row: Sequence[float], vectors: Sequence[np.ndarray]) -> np.ndarray:
        """sum_j row[j] * vectors[j] over the vectors known so far (later coefficients are zero)."""
        out = np.zeros_like(vectors[0])
        for coefficient, vector in zip(row, vectors, strict=False):
            if coefficient != 0.0:
                out += np.float32(coefficient) * vector
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "sampler": self.sampler, "steps": self.steps, "timesteps": list(self.timesteps),
            "inputs": [list(r) for r in self.inputs], "states": [list(r) for r in self.states],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamplerPlan:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} plan")
        plan = cls(
            sampler=str(data["sampler"]), steps=int(data["steps"]),
            timesteps=tuple(float(t) for t in data["timesteps"]),
            inputs=tuple(tuple(float(c) for c in r) for r in data["inputs"]),
            states=tuple(tuple(float(c) for c in r) for r in data["states"]),
        )
        width = plan.calls + 1
        if not plan.calls or any(len(r) != width for r in (*plan.inputs, *plan.states)):
            raise ValueError("sampler plan rows do not match its timesteps")
        if len(plan.inputs) != plan.calls or len(plan.states) != plan.calls:
            raise ValueError("sampler plan rows do not match its timesteps")
        return plan


def plan_key(sampler: str, steps: int) -> str:
    return f"{sampler}|{steps}"
