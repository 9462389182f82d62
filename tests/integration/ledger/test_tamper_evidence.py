"""The database refuses edits to the trail, and edits that get past it are caught by verify().

Tampering is done the way a database superuser could: on PostgreSQL with triggers disabled
(session_replication_role = replica), on SQLite after dropping the triggers.
"""

import pytest
import sqlalchemy as sa

from integration.ledger.helpers import tamper
from stagegate.ledger import AuditTrail, Ledger, NewEvent, open_ledger
from stagegate.ledger.chain import event_hash
from stagegate.ledger.verify import ALTERED, BROKEN_LINK, HEAD_MISMATCH, MISSING


def _trail_of_five(ledger: Ledger) -> AuditTrail:
    trail = AuditTrail(ledger)
    for i in range(5):
        trail.append(NewEvent(actor="alice", role="operator", action="stage", bytes=100 + i))
    assert trail.verify().intact
    return trail


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET bytes = 0 WHERE seq = 2", "DELETE FROM audit_events WHERE seq = 2"],
)
def test_the_database_refuses_updates_and_deletes(ledger: Ledger, statement: str) -> None:
    trail = _trail_of_five(ledger)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert [e.bytes for e in trail.query()] == [100, 101, 102, 103, 104]


def test_postgresql_refuses_truncate(pg_url: str) -> None:
    # SQLite has no TRUNCATE; its DELETE trigger already covers unqualified deletes.
    with open_ledger(pg_url) as ledger:
        trail = _trail_of_five(ledger)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), ledger.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE audit_events"))
        assert len(trail.query()) == 5


def test_altered_row_is_named(ledger: Ledger, ledger_url: str) -> None:
    trail = _trail_of_five(ledger)
    tamper(ledger_url, "UPDATE audit_events SET bytes = 999999 WHERE seq = 3")
    verdict = trail.verify()
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem, verdict.checked) == (False, 3, ALTERED, 2)


def test_undecodable_row_is_an_altered_row(ledger: Ledger, ledger_url: str) -> None:
    trail = _trail_of_five(ledger)
    tamper(ledger_url, "UPDATE audit_events SET details = 'not json' WHERE seq = 4")
    verdict = trail.verify()
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem) == (False, 4, ALTERED)


def test_deleted_middle_row_names_the_first_missing_seq(ledger: Ledger, ledger_url: str) -> None:
    trail = _trail_of_five(ledger)
    tamper(ledger_url, "DELETE FROM audit_events WHERE seq IN (2, 3)")
    verdict = trail.verify()
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem, verdict.checked) == (False, 2, MISSING, 1)


def test_rehashed_row_breaks_the_link_to_the_next(ledger: Ledger, ledger_url: str) -> None:
    # A careful forger recomputes the edited row's hash; the next row still names the old one.
    trail = _trail_of_five(ledger)
    original = trail.query()[2]
    forged_fields = {**original.hashed_fields(), "bytes": 1}
    forged_hash = event_hash(original.prev_hash, forged_fields)
    tamper(ledger_url, "UPDATE audit_events SET bytes = 1, hash = :h WHERE seq = 3", {"h": forged_hash})
    verdict = trail.verify()
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem) == (False, 4, BROKEN_LINK)


def test_deleted_last_row_is_caught_only_against_an_anchored_head(ledger: Ledger, ledger_url: str) -> None:
    trail = _trail_of_five(ledger)
    anchor = trail.head()
    assert anchor is not None and anchor[0] == 5
    tamper(ledger_url, "DELETE FROM audit_events WHERE seq = 5")
    assert trail.verify().intact  # nothing left to see without an anchor
    verdict = trail.verify(expected_head=anchor)
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem, verdict.checked) == (False, 5, MISSING, 4)


def test_rehashed_last_row_is_a_head_mismatch(ledger: Ledger, ledger_url: str) -> None:
    trail = _trail_of_five(ledger)
    anchor = trail.head()
    last = trail.query()[-1]
    forged_hash = event_hash(last.prev_hash, {**last.hashed_fields(), "bytes": 0})
    tamper(ledger_url, "UPDATE audit_events SET bytes = 0, hash = :h WHERE seq = 5", {"h": forged_hash})
    assert trail.verify().intact
    verdict = trail.verify(expected_head=anchor)
    assert (verdict.intact, verdict.first_bad_seq, verdict.problem) == (False, 5, HEAD_MISMATCH)


def test_an_anchor_from_the_past_still_verifies_a_longer_chain(ledger: Ledger) -> None:
    trail = _trail_of_five(ledger)
    anchor = trail.head()
    trail.append(NewEvent(actor="bob", role="operator", action="egress"))
    verdict = trail.verify(expected_head=anchor)
    assert verdict.intact and verdict.checked == 6
