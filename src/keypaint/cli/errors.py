"""One clear line and exit code 2 for every error a user can fix, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from keypaint.errors import InvalidParams, KeypaintError

P = ParamSpec("P")
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False)
# click's UsageError (an unknown option, `--steps abc`, a missing argument), whether typer runs on click or
# on its own copy of it: both raise BadParameter, a UsageError
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]


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


@contextmanager
def option_names(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise `InvalidParams` under the option the user typed (`--cfg` for guidance_scale ...)."""
    try:
        yield
    except InvalidParams as err:
        option = names.get(err.field)
        if option is None:
            raise
        # an option that sets several fields says which one: "--size: width must be a multiple of 8"
        shared = list(names.values()).count(option) > 1 and err.field != option.lstrip("-")
        reason = f"{err.field} {err.reason}" if shared else err.reason
        raise InvalidParams(option, reason) from None


class OneLineErrors(TyperGroup):
    """typer's command group, with command-line usage errors shown as keypaint's one line, exit code 2.

    typer prints them with the usage text and a box around; a user who typed `--steps abc` should read
    the same kind of line as for `--steps 0`.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _USAGE_ERROR as err:
            raise SystemExit(_usage_exit(err)) from None
        except typer.Abort:
            stderr.print("Aborted!")
            raise SystemExit(1) from None
        sys.exit(code if isinstance(code, int) else 0)


def _usage_exit(err: Exception) -> int:
    message = err.format_message() if hasattr(err, "format_message") else str(err)
    fail(f"{message} (see --help)")
    return int(getattr(err, "exit_code", 2))
