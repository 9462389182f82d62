"""Helpers for the ledger integration tests: tampering like a superuser, and writer processes."""

import multiprocessing.synchronize

import sqlalchemy as sa

from stagegate.ledger import AuditTrail, NewEvent, open_ledger


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


def append_many(url: str, writer: int, count: int, start: multiprocessing.synchronize.Event) -> None:
    """A writer process: open the ledger, wait for the others, then append ``count`` events."""
    with open_ledger(url) as ledger:
        trail = AuditTrail(ledger)
        start.wait(timeout=60)
        for i in range(count):
            trail.append(NewEvent(actor=f"writer-{writer}", role="worker", action="stage", bytes=i, files=1))
