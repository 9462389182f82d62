"""Several events appended in one transaction: the head is read and the append lock taken once,
and the chain still extends exactly as one append per transaction would, on both backends."""

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
import sqlalchemy as sa

from integration.ledger.helpers import sql_statements
from stagegate.ledger import AuditTrail, Ledger, NewEvent, open_ledger
from stagegate.ledger.chain import GENESIS_HASH
from stagegate.ledger.locks import AUDIT_APPEND_LOCK


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


def test_events_appended_last_wait_for_the_block_and_chain_in_order(ledger: Ledger) -> None:
    """Inside ``appending_last`` the events are queued, and appended together at the block's
    end (one head read, one INSERT), still in the transaction and in the order queued."""
    trail = AuditTrail(ledger)
    trail.append(_event("before"))
    with sql_statements(ledger) as statements, ledger.engine.begin() as conn:
        with AuditTrail.appending_last(conn):
            queued = [AuditTrail.append_in(conn, _event("batch", n)) for n in range(4)]
            with AuditTrail.appending_last(conn):  # nested: the outer block appends
                AuditTrail.append_in(conn, _event("batch", 4))
            assert queued == [None] * 4
            assert not any("INSERT INTO audit_events" in s for s in statements)
        later = AuditTrail.append_in(conn, _event("after the block"))  # extends the held head
    assert _head_reads(statements) == 1
    assert sum("INSERT INTO audit_events" in s for s in statements) == 2
    events = trail.query()
    assert [(e.actor, e.bytes) for e in events[1:6]] == [("batch", n) for n in range(5)]
    assert later is not None and later.seq == 7 and later.prev_hash == events[5].hash
    verdict = trail.verify()
    assert verdict.intact and verdict.checked == 7, verdict


def test_a_block_appending_last_leaves_the_chain_to_other_writers_until_its_end(pg_url: str) -> None:
    """PostgreSQL (SQLite's BEGIN IMMEDIATE serialises every write transaction anyway): while
    the block does its other work the append lock is free, so another writer appends
    meanwhile; the block's events then extend that writer's event."""
    with open_ledger(pg_url) as ledger:
        trail = AuditTrail(ledger)
        with ledger.engine.begin() as conn, AuditTrail.appending_last(conn):
            AuditTrail.append_in(conn, _event("slow batch", 1))
            with ledger.engine.begin() as probe:  # another writer's try, without waiting
                free = probe.scalar(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": AUDIT_APPEND_LOCK})
            assert free, "the append lock is held before the block's end"
            other = trail.append(_event("meanwhile"))
        assert other.seq == 1
        events = trail.query()
        assert [e.actor for e in events] == ["meanwhile", "slow batch"]
        assert events[1].prev_hash == other.hash and trail.verify().intact


def test_a_block_appending_last_that_fails_appends_nothing_and_leaves_no_queue(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        with pytest.raises(RuntimeError), conn.begin(), AuditTrail.appending_last(conn):
            AuditTrail.append_in(conn, _event("undone"))
            raise RuntimeError("an admission failed")
        with conn.begin():
            kept = AuditTrail.append_in(conn, _event("kept"))  # appended at once: no block open
    assert kept is not None and kept.seq == 1
    assert [e.actor for e in AuditTrail(ledger).query()] == ["kept"]
