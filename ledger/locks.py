"""Serialising writers that must see each other's commits (chain appends, migrations).

PostgreSQL: a transaction-scoped advisory lock, released by commit or rollback, so a crashed
writer can never leave it held. SQLite: nothing to do here, because every write transaction
already starts with ``BEGIN IMMEDIATE`` (see ``ledger.database``), which takes the database's
single write lock before the first read.
"""

from sqlalchemy import text
from sqlalchemy.engine import Connection

# Arbitrary 64-bit constants; they only have to differ from other advisory-lock users.
AUDIT_APPEND_LOCK = 0x5354_4147_4155_4431  # "STAGAUD1"
MIGRATION_LOCK = 0x5354_4147_4D49_4731  # "STAGMIG1"
# Extending the audit tree and signing checkpoints: one signer at a time, appends go on.
CHECKPOINT_LOCK = 0x5354_4147_4350_5431  # "STAGCPT1"


def lock_writers(conn: Connection, key: int) -> None:
    """Block until this transaction is the only writer holding ``key``."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
