"""``stagegate token``: issue, list and revoke API tokens. ``create`` talks to the ledger
directly (an admin on a host that can reach the service's database); ``list`` and ``revoke`` ask
the service when a server is set (your own tokens; an admin's: all), else the ledger."""

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from stagegate.client import context
from stagegate.client.read_from import service_or_local, where_from
from stagegate.client.service_render import format_age, table

if TYPE_CHECKING:  # the ledger's token queries are imported by the commands that run them
    from stagegate.ledger.tokens import TokenInfo

ROLES = ("job", "scientist", "steward", "auditor", "admin")


@click.group()
def token() -> None:
    """Manage the bearer tokens the service accepts."""


@token.command()
@click.option(
    "--user", required=True, help="Who the token speaks for: recorded as the actor in the audit trail."
)
@click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES),
    help="job and scientist: stage and see their own stagings; auditor: read everything and the "
    "audit trail; admin: everything.",
)
@click.option("--project", default=None, help="The project the user's stagings are accounted to.")
def create(user: str, role: str, project: str | None) -> None:
    """Issue a token and print it, once, on stdout; the ledger keeps only its hash, so it
    cannot be shown again. Hand it to its user, who sets STAGEGATE_TOKEN to it.

    Writes to the ledger at $STAGEGATE_DATABASE_URL: the service's database. Without it the
    token goes into the local SQLite ledger under $STAGEGATE_HOME, which only a service
    using that same file would accept.
    """
    from stagegate.ledger import Tokens
    from stagegate.ledger.settings import DATABASE_URL_ENV, ledger_url
    from stagegate.settings import load_settings

    with context.ledger() as ledger:
        issued = Tokens(ledger).create(user, role, project)
    click.echo(issued.token)
    scope = f"role {issued.role}" + (f", project {issued.project}" if issued.project else "")
    click.echo(
        f"token {issued.id} for {issued.user} ({scope}). It cannot be shown again: store it now.",
        err=True,
    )
    if load_settings().database_url is None:
        click.echo(
            f"note: {DATABASE_URL_ENV} is not set, so the token went into the local ledger "
            f"{ledger_url()}; a service only accepts it if it uses that same database",
            err=True,
        )


def _when(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else format_age((now - moment).total_seconds())


def _json(info: "TokenInfo") -> dict[str, object]:
    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": info.id,
        "user": info.user,
        "role": info.role,
        "project": info.project,
        "created_at": iso(info.created_at),
        "last_used_at": iso(info.last_used_at),
        "revoked_at": iso(info.revoked_at),
    }


@token.command("list")
@click.option("--revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help='Print {"tokens": [...]}.')
@where_from
def list_tokens(revoked: bool, as_json: bool, server: str | None, local: bool) -> None:
    """List tokens: id, user, role, project, when created and last used. Never the token itself
    (only its hash is kept, and that is not shown either).

    With a server set (--server or $STAGEGATE_URL) the service answers: your own user's tokens,
    every token for an admin. Else (or with --local) the ledger at $STAGEGATE_DATABASE_URL: all.
    """
    client = service_or_local(server, local)
    if client is not None:
        with client:
            found = client.tokens(include_revoked=revoked)
    else:
        from stagegate.ledger import Tokens

        with context.ledger() as ledger:
            found = Tokens(ledger).listed(include_revoked=revoked)
    if as_json:
        click.echo(json.dumps({"tokens": [_json(t) for t in found]}))
        return
    if not found:
        click.echo("no tokens")
        return
    now = datetime.now(UTC)
    rows = [
        [
            t.id,
            t.user,
            t.role,
            t.project or "-",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            _when(t.last_used_at, now),
            *(["revoked " + _when(t.revoked_at, now)] if revoked else []),
        ]
        for t in found
    ]
    headers = ["ID", "USER", "ROLE", "PROJECT", "CREATED", "LAST USED", *(["REVOKED"] if revoked else [])]
    click.echo("\n".join(table(headers, rows)))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@where_from
def revoke_token(token_id: str, server: str | None, local: bool) -> None:
    """Revoke the token with this ID (from `token list`, not the token itself): the service
    refuses it from its next request. On the service you may revoke your own user's tokens;
    an admin, anyone's. Someone else's is "not found" (exit 2), as one that does not exist.
    """
    client = service_or_local(server, local)
    if client is not None:
        with client:
            info = client.revoke_token(token_id)
    else:
        from stagegate.ledger import Tokens

        with context.ledger() as ledger:
            Tokens(ledger).revoke(token_id)
            (info,) = [t for t in Tokens(ledger).listed(include_revoked=True) if t.id == token_id]
    click.echo(f"token {info.id} of {info.user} ({info.role}) revoked")
