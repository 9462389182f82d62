"""Several events appended in one transaction: the head is read and the append lock taken once,
and the chain still extends exactly as one append per transaction would, on both backends."""

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from integration.ledger.helpers import sql_statements
from stagegate.ledger import AuditTrail, Ledger, NewEvent
from stagegate.ledger.chain import GENESIS_HASH


def _event(actor: str, n: int = 0) -> NewEvent:
    return NewEvent(actor=actor, role="worker", action="stage.requested", bytes=n)


def _head_reads(statements: list[str]) -> int:
    return sum("FROM audit_events" in s and "ORDER BY audit_events.seq DESC" in s for s in statements)


def test_appends_in_one_transaction_read_the_head_once_and_chain_in_order(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    trail.append(_event("before"))
    with sql_statements(ledger) as statements, ledger.engine.begin() as conn:
        appended = [AuditTrail.append_in(conn, _event("batch", n)) for n in range(5)]
    assert _head_reads(statements) == 1
    if ledger.dialect == "postgresql":
        assert sum("pg_advisory_xact_lock" in s for s in statements) == 1
    assert [e.seq for e in appended] == [2, 3, 4, 5, 6]
    assert all(b.prev_hash == a.hash for a, b in pairwise(appended))
    after = trail.append(_event("after"))
    assert after.seq == 7 and after.prev_hash == appended[-1].hash
    verdict = trail.verify()
    assert verdict.intact and verdict.checked == 7, verdict


def test_a_rolled_back_transaction_leaves_no_head_for_the_next_one_on_its_connection(
    ledger: Ledger,
) -> None:
    """The head is kept on the (pooled) connection: a later transaction on it must read the
    head afresh, never extend the rolled-back events."""
    with ledger.engine.connect() as conn:
        with pytest.raises(RuntimeError), conn.begin():
            AuditTrail.append_in(conn, _event("undone", 1))
            AuditTrail.append_in(conn, _event("undone", 2))
            raise RuntimeError("the state change failed")
        with conn.begin():
            kept = AuditTrail.append_in(conn, _event("kept"))
    assert kept.seq == 1 and kept.prev_hash == GENESIS_HASH
    trail = AuditTrail(ledger)
    assert [e.actor for e in trail.query()] == ["kept"]
    assert trail.verify().intact


def test_a_committed_transaction_leaves_no_head_while_others_append(ledger: Ledger) -> None:
    """After its commit the lock is gone and others append: the same connection's next
    transaction reads the head they left."""
    trail = AuditTrail(ledger)
    with ledger.engine.connect() as conn:
        with conn.begin():
            AuditTrail.append_in(conn, _event("first"))
        other = trail.append(_event("other"))  # another connection, between the two
        with conn.begin():
            mine = AuditTrail.append_in(conn, _event("second"))
    assert other.seq == 2 and mine.seq == 3 and mine.prev_hash == other.hash
    assert trail.verify().intact


def test_writers_appending_several_events_each_never_fork_the_chain(ledger: Ledger) -> None:
    """Eight threads, each appending three events per transaction: each transaction's events
    are consecutive on the chain (the lock is held from its first append to its commit)."""

    def write(n: int) -> None:
        for _ in range(10):
            with ledger.engine.begin() as conn:
                for i in range(3):
                    AuditTrail.append_in(conn, _event(f"writer-{n}", i))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    trail = AuditTrail(ledger)
    verdict = trail.verify()
    assert verdict.intact and verdict.checked == 240, verdict
    events = trail.query()
    for start in range(0, 240, 3):
        run = events[start : start + 3]
        assert len({e.actor for e in run}) == 1 and [e.bytes for e in run] == [0, 1, 2]
