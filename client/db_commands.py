"""``stagegate db upgrade``: bring the ledger's schema to head as its owner, and grant the
service's runtime role what it needs (and no right to alter the audit trail)."""

import click

from stagegate.ledger.settings import RUNTIME_ROLE_ENV, ledger_url, runtime_role


@click.group()
def db() -> None:
    """The ledger database: its schema, and who may do what in it."""


@db.command(
    epilog="Exit codes: 0 migrated (and granted); 1 the database could not be migrated or reached; "
    "2 a runtime role that does not exist or could alter the audit trail."
)
@click.option(
    "--runtime-role",
    "role",
    metavar="ROLE",
    default=None,
    help=f"PostgreSQL role the API and workers connect as (default: ${RUNTIME_ROLE_ENV}); it is "
    "granted INSERT and SELECT on the audit trail, read and write on the other tables, nothing more.",
)
def upgrade(role: str | None) -> None:
    """Migrate the ledger at $STAGEGATE_DATABASE_URL to the newest schema, connected as the
    role that owns it; with --runtime-role, then grant that role what the service needs.

    Run it before starting (or after upgrading) the API and workers, which connect as the
    runtime role and refuse to start on an out-of-date schema. The grants are re-applied on
    every run, so tables a newer release adds are covered. The database URL comes from the
    environment only, never a flag: it carries the owner's password.
    """
    # Imported here: `stagegate --help` defines this command and never migrates.
    from stagegate.ledger.database import create_ledger_engine
    from stagegate.ledger.migrate import HEAD_REVISION, upgrade_schema

    role = role or runtime_role()
    engine = create_ledger_engine(ledger_url())
    try:
        grants = upgrade_schema(engine, role)
    finally:
        engine.dispose()
    click.echo(f"ledger schema at revision {HEAD_REVISION}")
    for grant in grants:
        click.echo(f"  {role}: {', '.join(grant.privileges)} on {grant.table}")
