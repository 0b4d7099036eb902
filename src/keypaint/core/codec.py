"""`GenerationParams` as JSON and back: the one codec the job API, the server's job store and the
picture's reproduction JSON use.

Every field but the pictures (`init_image`, `mask`: they travel beside the JSON as bytes) has a JSON form:
the sampler by its name, LoRAs as `[name, weight]` pairs, embeddings as a list of names. Reading refuses an
unknown field or a value of the wrong type with `InvalidParams` naming the field; whether the values can
run is `GenerationParams.validate`'s question, asked later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from keypaint.core.control import unit_from_json, unit_to_json
from keypaint.core.flow import FlowOptions
from keypaint.core.hires import HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.core.params import GenerationParams, LoraRef
from keypaint.core.samplers import Sampler
from keypaint.errors import InvalidParams

PICTURES = ("init_image", "mask")  # fields that are pictures, never in the JSON
# each JSON field and the JSON types it may hold (bools are never numbers)
JSON_TYPES: dict[str, Any] = {
    "prompt": str, "negative_prompt": str, "steps": int, "guidance_scale": int | float, "sampler": str,
    "seed": int, "width": int | None, "height": int | None, "batch_size": int, "batch_count": int,
    "strength": int | float, "best_of": int, "loras": list, "embeddings": list, "expand_keywords": bool,
    "control_units": list,  # objects of core.control.unit_to_json's form, each image by its SHA-256
    "hires": dict | None, "outpaint": dict | None,  # HiresOptions / Outpaint as objects of their fields
    "flow": dict,
}
JSON_FIELDS = tuple(f.name for f in fields(GenerationParams) if f.name not in PICTURES)
assert set(JSON_FIELDS) == set(JSON_TYPES), "every GenerationParams field needs its JSON type here"


def params_to_json(params: GenerationParams, only: Iterable[str] | None = None) -> dict[str, Any]:
    """The JSON-ready fields of `params` (all of them, or `only` these, in that order)."""
    values: dict[str, Any] = {
        "prompt": params.prompt, "negative_prompt": params.negative_prompt, "steps": params.steps,
        "guidance_scale": params.guidance_scale, "sampler": params.sampler.value, "seed": params.seed,
        "width": params.width, "height": params.height, "batch_size": params.batch_size,
        "batch_count": params.batch_count, "strength": params.strength, "best_of": params.best_of,
        "loras": [[ref.source, ref.weight] for ref in params.loras], "embeddings": list(params.embeddings),
        "expand_keywords": params.expand_keywords,
        "control_units": [unit_to_json(unit) for unit in params.control_units],
        "hires": params.hires.to_json() if params.hires is not None else None,
        "outpaint": params.outpaint.to_json() if params.outpaint is not None else None,
        "flow": params.flow.to_json(),
    }
    return {name: values[name] for name in (JSON_FIELDS if only is None else only)}


def params_from_json(data: Mapping[str, Any], **overrides: Any) -> GenerationParams:
    """`GenerationParams` from `params_to_json`'s form; `overrides` (any field, pictures too) win.

    A field left out takes GenerationParams' default (`prompt` has none). Unknown fields and values of the
    wrong type are `InvalidParams` naming the field.
    """
    for name in data:
        if name in PICTURES:
            raise InvalidParams(name, "is a picture: it travels beside the JSON, not inside it")
        if name not in JSON_TYPES:
            raise InvalidParams(name, "is not a generation parameter")
    for name in overrides:
        if name not in JSON_TYPES and name not in PICTURES:
            raise InvalidParams(name, "is not a generation parameter")
    values: dict[str, Any] = {name: decode_field(name, value) for name, value in data.items()}
    values.update(overrides)
    if "prompt" not in values:
        raise InvalidParams("prompt", "missing")
    return GenerationParams(**values)


def decode_field(name: str, value: Any) -> Any:
    """One JSON field as GenerationParams holds it; `InvalidParams` naming `name` for a wrong type."""
    kind = JSON_TYPES[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise InvalidParams(name, f"recorded value {value!r} has the wrong type")
    if name == "sampler":
        return Sampler.parse(value)
    if name in ("hires", "outpaint") and value is not None:
        return HiresOptions.from_json(value) if name == "hires" else Outpaint.from_json(value)
    if name in ("guidance_scale", "strength"):
        return float(value)
    if name == "loras":
        return tuple(_lora_ref(item) for item in value)
    if name == "control_units":
        return tuple(unit_from_json(item) for item in value)
    if name == "flow":
        return FlowOptions.from_json(value)
    if name == "embeddings":
        for item in value:
            if not isinstance(item, str):
                raise InvalidParams("embedding", f"recorded value {item!r} has the wrong type")
        return tuple(value)
    return value


def _lora_ref(item: Any) -> LoraRef:
    if (not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str)
            or isinstance(item[1], bool) or not isinstance(item[1], int | float)):
        raise InvalidParams("loras", f"recorded value {item!r} is not [name, weight]")
    return LoraRef(item[0], float(item[1]))
