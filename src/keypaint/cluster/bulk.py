"""Bulk generation (`keypaint generate --prompts FILE`): one picture set per line of a prompts file.

A line is a prompt, or a JSON object of generation parameters (core.codec's names: {"prompt": ...,
"steps": 20, "seed": 3}); blank lines and lines starting with # are skipped. The command line's options are
every line's defaults. Each line's pictures have fixed names (`OUT/NNNNNN-K.png`, NNNNNN the line number)
and a fixed seed (the line's, else the --seed or 0 plus the line number), so a run stopped half way and
started again skips the pictures already written and paints the same ones it would have.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keypaint.core.codec import decode_field, params_to_json
from keypaint.core.params import GenerationParams
from keypaint.errors import InvalidParams

PROMPT_FIELDS = ("prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "seed", "width", "height",
                 "batch_size", "batch_count", "strength", "loras", "embeddings", "expand_keywords")


@dataclass(frozen=True)
class Row:
    """One line: its number (1-based), its params as core.codec's JSON, and its pictures' file names."""

    line: int
    params: dict[str, Any]
    names: tuple[str, ...]

    def missing(self, out: Path) -> bool:
        return not all((out / name).exists() for name in self.names)


def read_prompts(path: Path, base: GenerationParams) -> list[Row]:
    """The lines of `path` as rows over `base`; `InvalidParams` naming the line for a bad one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidParams("prompts", f"cannot read {path}: {err}") from None
    rows: list[Row] = []
    start_seed = base.seed if base.seed != -1 else 0
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        params = _line_params(text, replace(base, seed=start_seed + number), number)
        try:
            params.validate()
        except InvalidParams as err:
            raise InvalidParams("prompts", f"line {number}: {err}") from None
        names = tuple(f"{number:06d}-{k}.png" for k in range(params.total_images))
        rows.append(Row(number, params_to_json(params, PROMPT_FIELDS), names))
    if not rows:
        raise InvalidParams("prompts", f"{path} has no prompts")
    return rows


def _line_params(text: str, base: GenerationParams, number: int) -> GenerationParams:
    """The line's params over `base` (which holds the line's default seed)."""
    if not text.startswith("{"):
        return replace(base, prompt=text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidParams("prompts", f"line {number}: not JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise InvalidParams("prompts", f"line {number}: give a JSON object of parameters")
    unknown = sorted(set(data) - set(PROMPT_FIELDS))
    if unknown:
        raise InvalidParams("prompts", f"line {number}: {', '.join(unknown)} is not a parameter here "
                            f"(known: {', '.join(PROMPT_FIELDS)})")
    try:
        return replace(base, **{name: decode_field(name, value) for name, value in data.items()})
    except InvalidParams as err:
        raise InvalidParams("prompts", f"line {number}: {err}") from None


def paint_row(painter: Any, row: Row, out: Path) -> list[str]:
    """Paint one row and write its pictures that are missing; the names written."""
    from keypaint.core.codec import params_from_json
    from keypaint.outputs.results import save_generated_as

    written: list[str] = []
    for name, result in zip(row.names, painter.generate(params_from_json(row.params)), strict=True):
        if not (out / name).exists():
            save_generated_as(result, out / name)
            written.append(name)
    return written


def paint_here(painter: Any, rows: list[Row], out: Path, advance: Callable[[Row], None]) -> None:
    """Without Ray: the rows one after another in this process."""
    for row in rows:
        paint_row(painter, row, out)
        advance(row)
