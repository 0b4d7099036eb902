"""The model options every command that loads a model shares (one help text each)."""

from __future__ import annotations

from typing import Annotated

import typer

AllowPickle = Annotated[
    bool, typer.Option(help="allow .ckpt/.pt/.pth/.bin models (their weights only are read)")
]
MaxModelGb = Annotated[
    float | None,
    typer.Option(help="largest model accepted, in GB [default: $KEYPAINT_MAX_MODEL_GB, else 32]"),
]


def model_size_limit(gigabytes: float | None) -> int:
    """The limit in bytes, checked now: a bad number (or $KEYPAINT_MAX_MODEL_GB) fails before any loading."""
    from keypaint.models.preflight import max_model_bytes

    return max_model_bytes(gigabytes)
