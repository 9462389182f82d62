"""``stagegate token``: issue API tokens. Talks to the ledger directly (an admin on a host
that can reach the service's database), not to the service."""

import click

from stagegate.client import context

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
