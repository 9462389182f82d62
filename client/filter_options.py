"""``--include`` / ``--exclude``, the same two options on every command that chooses files of a
source (``stage``, ``egress``, ``policy check``)."""

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

_RULES = (
    "rclone's patterns: * within a path segment, ** across them, ?, [...], {a,b}; a leading / anchors "
    "at the source's root, else the pattern matches the end of the key"
)


def filter_options(command: F) -> F:
    """Add the two repeatable options, passed on as ``include`` and ``exclude`` tuples."""
    command = click.option(
        "--exclude",
        "exclude",
        multiple=True,
        metavar="PATTERN",
        help=f"Leave out the keys this matches (repeatable): {_RULES}. Not beside --include, where it "
        "would change nothing (rclone tries every include first): refused.",
    )(command)
    return click.option(
        "--include",
        "include",
        multiple=True,
        metavar="PATTERN",
        help="Take only the keys some --include matches (repeatable, first match wins; label files "
        "are read whatever the filters say).",
    )(command)
