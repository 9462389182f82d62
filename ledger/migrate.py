"""Bringing a ledger database to the newest schema, with Alembic configured in code.

No alembic.ini is read at runtime: the migrations ship inside the package and are found
by path. Concurrent openers (every worker starts by opening the ledger) are serialised, so
exactly one of them runs each migration and the others find the database at head.

On PostgreSQL only the role that owns the schema migrates: a deployment runs
``stagegate db upgrade`` as the owner (which also grants the runtime role what it needs,
see ``ledger.roles``), and the API and workers, connected as the runtime role, refuse to
start on an out-of-date schema rather than try with rights they do not have.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from stagegate.errors import StagegateError
from stagegate.ledger.locks import MIGRATION_LOCK, lock_writers
from stagegate.ledger.roles import (
    RuntimeRoleError,
    TableGrant,
    check_runtime_role,
    grant_runtime_role,
    may_migrate,
)
from stagegate.ledger.sqlite_schema import create_at_head, is_empty, sqlite_revision

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions; a test checks it against Alembic's own view.
HEAD_REVISION = "0013"


def alembic_config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class SchemaNotCurrentError(StagegateError):
    """The ledger's schema is older than this stagegate, and the connected role may not
    migrate it (it is the runtime role, not the owner)."""


def _revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if found is None else str(found)
    except DBAPIError:
        return None  # no alembic_version table yet (a new database), or not ours to read


def _not_current(engine: Engine, conn: Connection) -> SchemaNotCurrentError:
    role = conn.execute(text("SELECT current_user")).scalar_one()
    found = _revision(engine)
    at = f"at schema revision {found}" if found else "not migrated yet"
    return SchemaNotCurrentError(
        f"the ledger database is {at}, this stagegate needs revision {HEAD_REVISION}, and the role "
        f"{role!r} it connects as does not own the schema, so it will not migrate it: run "
        f"`stagegate db upgrade --runtime-role {role}` with STAGEGATE_DATABASE_URL naming the owner role, "
        "then start this process again"
    )


def upgrade_with_alembic(conn: Connection) -> None:
    """Run every migration the database on ``conn`` lacks, in the caller's transaction."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _upgrade(conn: Connection) -> None:
    # A new SQLite file gets the whole schema in one step (see ledger.sqlite_schema), without
    # loading Alembic; anything already there, and PostgreSQL, goes through the migrations.
    if conn.dialect.name == "sqlite":
        if is_empty(conn):
            create_at_head(conn)
            return
        if sqlite_revision(conn) == HEAD_REVISION:
            return  # another opener built it while this one waited for the writer lock
    upgrade_with_alembic(conn)


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to head if it is not there, as every opener of the ledger does.

    Raises :class:`SchemaNotCurrentError` when a PostgreSQL schema needs migrating and the
    connected role does not own it."""
    # Every CLI call opens the ledger: when it is already current, one query answers, and
    # Alembic (a sixth of a second to import) is never loaded.
    if _revision(engine) == HEAD_REVISION:
        return
    # One transaction holds the writer lock (advisory on PostgreSQL, BEGIN IMMEDIATE on SQLite)
    # while Alembic reads the current revision and migrates; both databases roll DDL back too.
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql" and not may_migrate(conn):
            raise _not_current(engine, conn)
        lock_writers(conn, MIGRATION_LOCK)
        _upgrade(conn)


def upgrade_schema(engine: Engine, runtime_role: str | None) -> list[TableGrant]:
    """``stagegate db upgrade``: migrate to head and, with ``runtime_role`` (PostgreSQL only),
    grant that role what the service needs, re-applied even when already at head. Both in one
    transaction: a refused role leaves the schema as it was. Returns the grants made."""
    if runtime_role is not None and engine.dialect.name != "postgresql":
        raise RuntimeRoleError(
            f"--runtime-role applies to a PostgreSQL ledger only; this one is {engine.dialect.name}, "
            "which has no roles (leave the option and STAGEGATE_DB_RUNTIME_ROLE unset)"
        )
    with engine.begin() as conn:
        lock_writers(conn, MIGRATION_LOCK)
        if runtime_role is not None:
            check_runtime_role(conn, runtime_role)  # before migrating, so a refusal costs nothing
        if conn.dialect.name == "postgresql" and not may_migrate(conn):
            role = conn.execute(text("SELECT current_user")).scalar_one()
            raise SchemaNotCurrentError(
                f"the role {role!r} does not own the ledger's schema, so it cannot migrate it: run "
                "`stagegate db upgrade` with STAGEGATE_DATABASE_URL naming the owner role"
            )
        _upgrade(conn)
        return [] if runtime_role is None else grant_runtime_role(conn, runtime_role)
