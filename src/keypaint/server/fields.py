"""Typed request fields shared by both APIs: numbers that are numbers (never true/false), finite floats."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
# Long enough for any real prompt; the configured Limits.max_prompt_chars is checked after parsing.
MAX_TEXT = 100_000
Text = Annotated[str, Field(max_length=MAX_TEXT)]
