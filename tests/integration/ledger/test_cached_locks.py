"""How admission locks a node's cached dataset (ledger.staging_steps.lock_cached), on
PostgreSQL, where row locks exist: hits of a copy used lately share its lock, so a burst of
requests for one dataset waits for no other request; anything that writes the row (a stale
hit moving it in the eviction order, an eviction, a deletion) takes it alone."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from stagegate.ledger import Ledger, Nodes, open_ledger
from stagegate.ledger.models import NodeDatasetRow
from stagegate.ledger.staging_steps import TOUCH_STEP, lock_cached
from stagegate.states import DatasetState

pytestmark = pytest.mark.integration

DIGEST = "c" * 64


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    with open_ledger(pg_url) as opened:
        yield opened


def _cached(ledger: Ledger, used_ago: timedelta, state: str = DatasetState.READY) -> datetime:
    used = datetime.now(UTC) - used_ago
    Nodes(ledger).heartbeat("a", "/nvme/a", 1 << 40, "a@host:1")
    with ledger.sessions.begin() as session:
        session.add(
            NodeDatasetRow(node="a", digest=DIGEST, path="/nvme/a/datasets/c", files=1, bytes=1,
                           state=state, writer_job=None, created_at=used, last_used=used)
        )  # fmt: skip
    return used


def _impatient(session) -> None:  # type: ignore[no-untyped-def]
    # A lock this transaction cannot have at once fails it here, instead of waiting.
    session.execute(text("SET LOCAL lock_timeout = '300ms'"))


def test_hits_of_a_copy_used_lately_share_its_lock_and_leave_it_unwritten(pg_ledger: Ledger) -> None:
    used = _cached(pg_ledger, timedelta(0))
    with pg_ledger.sessions.begin() as first:
        one = lock_cached(first, "a", DIGEST, datetime.now(UTC))
        with pg_ledger.sessions.begin() as second:
            _impatient(second)
            two = lock_cached(second, "a", DIGEST, datetime.now(UTC))  # does not wait for the first
        assert not one.exclusive and not two.exclusive
        assert lock_cached(first, "a", DIGEST, datetime.now(UTC) + TOUCH_STEP).exclusive is False, (
            "asked again in one transaction: the same lock, never raised to exclusive"
        )
    with pg_ledger.read_session() as session, session.begin():
        row = session.get(NodeDatasetRow, ("a", DIGEST))
        assert row is not None and row.last_used == used


def test_a_stale_hit_moves_the_copy_only_if_no_one_holds_it(pg_ledger: Ledger) -> None:
    # A pinned copy is evicted by no one: moving it in the eviction order is not worth a wait.
    _cached(pg_ledger, TOUCH_STEP * 5)
    with pg_ledger.sessions.begin() as other:
        other.get(NodeDatasetRow, ("a", DIGEST), with_for_update={"read": True})
        with pg_ledger.sessions.begin() as hit:
            _impatient(hit)
            assert not lock_cached(hit, "a", DIGEST, datetime.now(UTC)).exclusive


def test_a_copy_being_written_is_shared_by_its_waiters(pg_ledger: Ledger) -> None:
    _cached(pg_ledger, TOUCH_STEP * 5, DatasetState.WRITING)
    with pg_ledger.sessions.begin() as first, pg_ledger.sessions.begin() as second:
        assert not lock_cached(first, "a", DIGEST, datetime.now(UTC)).exclusive
        _impatient(second)
        assert not lock_cached(second, "a", DIGEST, datetime.now(UTC)).exclusive


def test_a_shared_hit_holds_off_an_eviction_until_it_commits(pg_ledger: Ledger) -> None:
    _cached(pg_ledger, timedelta(0))
    with pg_ledger.sessions.begin() as hit:
        assert not lock_cached(hit, "a", DIGEST, datetime.now(UTC)).exclusive
        with pytest.raises(OperationalError, match="lock timeout"), pg_ledger.sessions.begin() as evictor:
            _impatient(evictor)
            evictor.execute(update(NodeDatasetRow).values(state=DatasetState.EVICTING))


@pytest.mark.parametrize(
    ("used_ago", "state"),
    [(TOUCH_STEP * 5, DatasetState.READY), (timedelta(0), DatasetState.EVICTING)],
    ids=["stale", "evicting"],
)
def test_a_hit_that_writes_the_row_takes_it_alone(pg_ledger: Ledger, used_ago: timedelta, state: str) -> None:
    _cached(pg_ledger, used_ago, state)
    with pg_ledger.sessions.begin() as writer:
        assert lock_cached(writer, "a", DIGEST, datetime.now(UTC)).exclusive
        with pytest.raises(OperationalError, match="lock timeout"), pg_ledger.sessions.begin() as other:
            _impatient(other)
            lock_cached(other, "a", DIGEST, datetime.now(UTC))


def test_the_mode_is_decided_again_by_the_next_transaction_on_the_same_connection(pg_ledger: Ledger) -> None:
    _cached(pg_ledger, timedelta(0))
    with pg_ledger.sessions.begin() as first:
        assert not lock_cached(first, "a", DIGEST, datetime.now(UTC)).exclusive
    with pg_ledger.sessions.begin() as later:  # the pool hands back the same connection
        assert lock_cached(later, "a", DIGEST, datetime.now(UTC) + TOUCH_STEP * 5).exclusive
