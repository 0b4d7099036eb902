"""A command group that still answers its old single-command form: `keypaint eval HELDOUT` = `eval pairs`."""

from __future__ import annotations

import click
from typer.core import TyperGroup

HELP = ("--help", "-h")


class DefaultGroup(TyperGroup):
    """When the first argument names no sub-command, the arguments go to the default one."""

    default_command = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in HELP and self.default_command:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def default_group(name: str) -> type[DefaultGroup]:
    """A DefaultGroup class whose default sub-command is `name`."""
    return type(f"DefaultGroup_{name}", (DefaultGroup,), {"default_command": name})
