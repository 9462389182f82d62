"""Helpers for the ledger integration tests: tampering like a superuser, writer processes, and
the SQL a block sends."""

import multiprocessing.synchronize
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from stagegate.ledger import AuditTrail, Ledger, NewEvent, open_ledger


@contextmanager
def sql_statements(ledger: Ledger) -> Iterator[list[str]]:
    """Every SQL statement the ledger's engine sends while the block runs."""
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(ledger.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", record)


def tamper(url: str, statement: str, params: dict[str, object] | None = None) -> None:
    """Run ``statement`` as a superuser who gets past the append-only triggers would:
    on PostgreSQL with triggers off for the transaction, on SQLite after dropping them."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_events_no_update"))
                conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            conn.execute(sa.text(statement), params or {})
    finally:
        engine.dispose()


def drop_audit_triggers(url: str) -> None:
    """Drop every trigger guarding audit_events, as the database's owner (or a superuser) can:
    the attacker the signed checkpoints are for."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                listed = (
                    "SELECT tgname FROM pg_trigger"
                    " WHERE tgrelid = 'audit_events'::regclass AND NOT tgisinternal"
                )
            else:
                listed = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
            names = list(conn.execute(sa.text(listed)).scalars())
            assert names, "audit_events has no triggers guarding it"
            for name in names:
                on = " ON audit_events" if conn.dialect.name == "postgresql" else ""
                conn.execute(sa.text(f'DROP TRIGGER "{name}"{on}'))
    finally:
        engine.dispose()


def as_owner(url: str, statement: str, params: dict[str, object] | None = None) -> None:
    """Run ``statement`` plainly, in its own transaction (after :func:`drop_audit_triggers`)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params or {})
    finally:
        engine.dispose()


def append_many(url: str, writer: int, count: int, start: multiprocessing.synchronize.Barrier) -> None:
    """A writer process: open the ledger, wait until every writer has, then append ``count`` events.

    A barrier, not a timed head start: on a loaded machine spawned writers can take seconds to
    import, and the first ones would otherwise finish alone before the last one opens the ledger."""
    with open_ledger(url) as ledger:
        trail = AuditTrail(ledger)
        start.wait(timeout=120)
        for i in range(count):
            trail.append(NewEvent(actor=f"writer-{writer}", role="worker", action="stage", bytes=i, files=1))
