"""Presets: named sets of `GenerationParams` fields that front ends offer by name (`--lcm`, the job API's
`"preset": "lcm"`).

A preset fills in the fields a request leaves open and adds what it needs; it never overrides a field the
request gives. It is what an A1111 user sets by hand, so the picture records it the same way (sampler
LCM, `<lora:keypaint-lcm:1>`) and `--from` re-makes it without knowing about presets.
"""

from __future__ import annotations

from typing import Any

from keypaint.core.params import LoraRef
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

LCM_LORA = "keypaint-lcm"  # shipped with the built-in model (keypaint.builtin.pack lcm)
LCM_STEPS = 4
PRESETS = ("lcm",)


def apply_preset(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (GenerationParams fields a request set) with preset `name` filled in.

    "lcm": the LCM sampler, 4 steps and CFG 1 unless given, and the built-in LCM-LoRA at weight 1 added.
    A field the preset cannot share (another sampler) is `InvalidParams` naming "preset".
    """
    if name != "lcm":
        raise InvalidParams("preset", f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    values = dict(given)
    sampler = values.setdefault("sampler", Sampler.LCM)
    if sampler is not Sampler.LCM:
        raise InvalidParams("preset", f"runs the LCM sampler, not {sampler.value}")
    values.setdefault("steps", LCM_STEPS)
    values.setdefault("guidance_scale", 1.0)
    values["loras"] = (*values.get("loras", ()), LoraRef(LCM_LORA, 1.0))
    return values
