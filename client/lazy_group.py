"""A click group whose subcommands are imported when one is run, not when the group is.

Every ``stagegate`` call starts a new interpreter, and this environment compiles our modules
from source in each one: importing all eighteen commands' modules (and what they import) for
``stagegate stage`` cost more CPU than staging a few small files. ``--help`` and shell
completion still list every command, importing each to read its help.
"""

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """``commands_in`` maps each subcommand's name to ``"module:attribute"``, where it is defined."""

    def __init__(self, *args: Any, commands_in: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commands_in = dict(commands_in)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._commands_in})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._commands_in or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self._commands_in[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self._commands_in[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command
