"""A1111 "infotext": the three-line parameter text that A1111, Forge, Civitai and most viewers read.

Layout (A1111 `modules/processing.py::create_infotext`)::

    <prompt, may span lines>
    Negative prompt: <negative, may span lines>          (left out when empty)
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, ...

A value holding a comma, colon, newline or double quote is written as a JSON string, which is how A1111's
`infotext_utils.quote` keeps "Lora hashes" and "Hires upscaler" values in one field. Readers that split the
line at every comma and colon (sd-parsers) would still cut such a value, so in keypaint's own fields
("Keywords used") the JSON string writes commas and colons as the JSON escapes \u002c and \u003a: A1111's
`unquote` (json.loads) reads the value back exactly and sd-parsers keeps it in one piece. Fields A1111
defines keep A1111's spelling, which other tools match as written. The parser follows
`infotext_utils.parse_generation_parameters`: the last line is the parameter line only if it holds at least
three `key: value` pairs; otherwise it is part of the prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from keypaint.core.control import units_from_infotext
from keypaint.core.flow import FlowOptions
from keypaint.core.hires import HiresOptions
from keypaint.core.outpaint import Outpaint
from keypaint.core.params import GenerationParams
from keypaint.core.samplers import SPECS, from_infotext
from keypaint.errors import InvalidParams
from keypaint.versions import package_version

# A1111's `re_param_code`: a key, then either a JSON-quoted value or anything up to the next comma.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_KEY = re.compile(r"\w[\w \-/]+")
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"
# The GenerationParams field each read infotext field sets; an override of that field skips reading it.
_FIELD_OF = {"Steps": "steps", "Sampler": "sampler", "Schedule type": "sampler",
             "CFG scale": "guidance_scale", "Seed": "seed", "Denoising strength": "strength",
             "Keyword expansion": "expand_keywords", "Distilled CFG Scale": "flow", "Shift": "flow"}

InfoValue = str | int | float
# Fields A1111 itself writes (other tools match them as A1111 spells them), and "Lora weights", which keeps
# the "Lora hashes" list form beside it: quoted as A1111 does.
_A1111 = {"Lora hashes", "Lora weights", "TI hashes", "Hashes", "Hires upscaler", "Hires resize",
          "Hires upscale"}


def build_infotext(
    params: GenerationParams,
    *,
    seed: int,
    width: int,
    height: int,
    model_name: str | None,
    model_hash: str | None,
    extra: dict[str, InfoValue] | None = None,
) -> str:
    """The infotext of one picture, in A1111's field order; `seed` is this picture's own seed.

    `model_hash` is written as A1111's short hash (its first 10 characters, Civitai's "AutoV2").
    `extra` fields go after the built-in ones and before `Version`, as A1111's extra_generation_params do.
    """
    spec = SPECS[params.sampler]
    fields: dict[str, InfoValue | None] = {
        "Steps": params.steps,
        "Sampler": spec.infotext_sampler,
        "Schedule type": spec.schedule_type,
        "CFG scale": params.guidance_scale,
        **params.flow.infotext(),  # SD3/Flux: Forge's "Distilled CFG Scale", "Shift"
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model hash": model_hash[:10] if model_hash else None,
        "Model": model_name or None,
        "Denoising strength": params.strength if params.mode != "txt2img" else None,
        "Keyword expansion": None if params.expand_keywords else "off",
    }
    if params.hires is not None:  # A1111's fields; its "Denoising strength" is the second pass's
        fields.update(params.hires.infotext())
    if params.outpaint is not None:
        fields["Outpaint"] = params.outpaint.text()
    for key, value in (extra or {}).items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"infotext field name {key!r} must be letters, digits, spaces, '-' or '/'")
        if key in fields or key == "Version":
            raise ValueError(f"infotext field {key!r} is written by keypaint itself")
        fields[key] = value
    fields["Version"] = f"keypaint {package_version('keypaint')}"

    line = ", ".join(key if key == value else f"{key}: {quote(_format(value), split_safe=not _is_a1111(key))}"
                     for key, value in fields.items() if value is not None)
    negative = f"\n{_NEGATIVE} {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{line}".strip()


def _is_a1111(key: str) -> bool:
    """A1111's own fields and sd-webui-controlnet's "ControlNet N" are quoted as A1111 quotes them."""
    return key in _A1111 or bool(re.fullmatch(r"ControlNet \d+", key))


def quote(text: str, *, split_safe: bool = False) -> str:
    """A1111's `quote`, also quoting values with a double quote so that every value reads back unchanged.

    `split_safe` writes the commas and colons inside the JSON string as escapes, for readers that split
    the parameter line at them before unquoting (sd-parsers).
    """
    if not any(ch in text for ch in ',:\n"'):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace(",", "\\u002c").replace(":", "\\u003a") if split_safe else quoted


def unquote(text: str) -> str:
    """A1111's `unquote`: a JSON string becomes its text; anything else stays as written."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str) else text


def parse_infotext(text: str) -> dict[str, str]:
    """Split an infotext into "prompt", "negative_prompt" and its `Key: value` fields (values unquoted).

    Like A1111, each prompt line is stripped, and a field repeated on the parameter line keeps its last value.
    No defaults are filled in: a field that is not written is not in the result.
    """
    *lines, last = text.strip().replace("\r\n", "\n").split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""

    prompt: list[str] = []
    negative: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not negative and line.startswith(_NEGATIVE):
            negative.append(line[len(_NEGATIVE):].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)

    result = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}
    for key, value in _PARAM.findall(last):
        result[key] = unquote(value.strip())
    return result


def params_from_infotext(text: str, **overrides: Any) -> GenerationParams:
    """The `GenerationParams` an infotext describes; `overrides` (GenerationParams fields) win over it.

    Read: prompt, negative prompt, Steps, Sampler + Schedule type, CFG scale, Seed, Size, Denoising
    strength, Keyword expansion, the Hires fields, Outpaint, and Forge's Distilled CFG Scale and Shift
    (SD3/Flux). Other fields (Lora hashes, Clip skip, ...) are ignored. A value
    that cannot be read raises `InvalidParams` naming the field, unless an override replaces it (so a
    sampler keypaint lacks can be swapped for one it has).
    """
    info = parse_infotext(text)
    wanted = {key: value for key, value in info.items() if _FIELD_OF.get(key) not in overrides}
    values: dict[str, Any] = {"prompt": info["prompt"], "negative_prompt": info["negative_prompt"]}
    if "Steps" in wanted:
        values["steps"] = _int_field("steps", "Steps", wanted["Steps"])
    if "Sampler" in wanted:
        values["sampler"] = from_infotext(wanted["Sampler"], wanted.get("Schedule type"))
    if "CFG scale" in wanted:
        values["guidance_scale"] = _float_field("guidance_scale", "CFG scale", wanted["CFG scale"])
    if "Seed" in wanted:
        values["seed"] = _int_field("seed", "Seed", wanted["Seed"])
    if "Size" in wanted and not {"width", "height"} <= overrides.keys():
        size = _SIZE.match(wanted["Size"].strip())
        if size is None:
            raise InvalidParams("size", f"infotext 'Size' must look like 512x768, got {wanted['Size']!r}")
        values["width"], values["height"] = int(size.group(1)), int(size.group(2))
    if "Denoising strength" in wanted:
        values["strength"] = _float_field("strength", "Denoising strength", wanted["Denoising strength"])
    if "Keyword expansion" in wanted:
        values["expand_keywords"] = wanted["Keyword expansion"].strip().lower() != "off"
    if "control_units" not in overrides:  # sd-webui-controlnet's units, without their pictures
        values["control_units"] = units_from_infotext(info)
    hires = HiresOptions.from_infotext(info) if "hires" not in overrides else None
    if hires is not None:  # then "Denoising strength" was the second pass's
        values["hires"] = hires
        values.pop("strength", None)
    if "Outpaint" in info and "outpaint" not in overrides:
        values["outpaint"] = Outpaint.parse(info["Outpaint"])
    if "flow" not in overrides and (flow := FlowOptions.from_infotext(wanted)) != FlowOptions():
        values["flow"] = flow
    return make_params(values, overrides)


def make_params(values: dict[str, Any], overrides: dict[str, Any]) -> GenerationParams:
    """`GenerationParams(**values)` with `overrides` on top; an unknown override is `InvalidParams`."""
    known = GenerationParams.__dataclass_fields__
    for name in overrides:
        if name not in known:
            raise InvalidParams(name, "is not a generation parameter")
    return GenerationParams(**{**values, **overrides})


def _int_field(name: str, label: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidParams(name, f"infotext '{label}' must be a whole number, got {text!r}") from None


def _float_field(name: str, label: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidParams(name, f"infotext '{label}' must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidParams(name, f"infotext '{label}' must be a finite number, got {text!r}")
    return value


def _format(value: InfoValue) -> str:
    """Numbers the way A1111's UI writes them: 7.0 as "7", 0.75 as "0.75"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
