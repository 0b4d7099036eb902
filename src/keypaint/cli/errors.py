"""One clear line and exit code 2 for every error a user can fix, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from keypaint.errors import KeypaintError

P = ParamSpec("P")
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False)


def fail(message: str) -> typer.Exit:
    """Print `message` as keypaint's one-line error and return the exit to raise (code 2)."""
    stderr.print("[bold red]error:[/]", escape(message), soft_wrap=True)
    return typer.Exit(code=2)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn `KeypaintError`s raised by a command into `fail(...)`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except KeypaintError as err:
            raise fail(str(err)) from None

    return wrapper
