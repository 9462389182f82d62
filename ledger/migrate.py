"""Bringing a ledger database to the newest schema, with Alembic configured in code.

No alembic.ini is read at runtime: the migrations ship inside the package and are found
by path. Concurrent openers (every worker starts by opening the ledger) are serialised, so
exactly one of them runs each migration and the others find the database at head.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from ledger.locks import MIGRATION_LOCK, lock_writers

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions; a test checks it against Alembic's own view.
HEAD_REVISION = "0005"


def alembic_config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    except DBAPIError:
        return False  # no alembic_version table yet: a new database


def upgrade_to_head(engine: Engine) -> None:
    # Every CLI call opens the ledger: when it is already current, one query answers, and
    # Alembic (a sixth of a second to import) is never loaded.
    if _at_head(engine):
        return
    from alembic import command

    # One transaction holds the writer lock (advisory on PostgreSQL, BEGIN IMMEDIATE on SQLite)
    # while Alembic reads the current revision and migrates; both databases roll DDL back too.
    with engine.begin() as conn:
        lock_writers(conn, MIGRATION_LOCK)
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
