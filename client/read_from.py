"""``--server`` / ``--local``: which trail a read command reads. With a server named (or
$STAGEGATE_URL set) the service answers; ``--local`` reads the ledger this machine reaches; a
command that only the ledger can answer refuses a set server rather than answer for the wrong
side (issue 14: an auditor with STAGEGATE_URL set was shown the local trail, silently)."""

from typing import TYPE_CHECKING, Any

import click

from stagegate.client import context
from stagegate.settings import load_settings

if TYPE_CHECKING:
    from stagegate.client.service_client import ServiceClient


def where_from(f: Any) -> Any:
    """The ``--server URL`` and ``--local`` options of a read command."""
    f = click.option(
        "--local",
        is_flag=True,
        help="Read the ledger directly ($STAGEGATE_DATABASE_URL, else the SQLite file under "
        "$STAGEGATE_HOME) even when a server is set.",
    )(f)
    return click.option(
        "--server",
        metavar="URL",
        default=lambda: load_settings().url,
        show_default=f"${context.SERVER_ENV}",
        help="Ask the stagegate service (an auditor's or admin's token in $STAGEGATE_TOKEN).",
    )(f)


def service_or_local(server: str | None, local: bool) -> "ServiceClient | None":
    """The service client to read from, or None for the local ledger."""
    if local or not server:
        return None
    try:
        return context.service(server)
    except click.UsageError as exc:  # no token: say how to read the ledger instead
        raise click.UsageError(f"{exc.message}; or pass --local to read the ledger directly") from None


def ledger_here(server: str | None, local: bool, what: str) -> None:
    """For a command the service cannot answer: refuse a set server unless ``--local`` says the
    ledger this machine reaches is the one meant."""
    if server and not local:
        raise click.UsageError(
            f"{what} reads the ledger itself, not the service at {server}: pass --local to read the "
            "ledger this machine reaches ($STAGEGATE_DATABASE_URL, else the SQLite file under "
            "$STAGEGATE_HOME)"
        )
