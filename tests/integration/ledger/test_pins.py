"""Pin leases in the ledger, on each backend: a lease that runs out releases the staging once
(audited with the reason, its datasets evictable, GB-hours stopped), a renewal moves it, and
nobody renews what is not theirs."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.ledger import (
    AuditTrail,
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    Principal,
    StagingRequests,
    StagingSteps,
    StagingViews,
    Tasks,
)
from stagegate.ledger.pins import PinLeases, PinReleasedError, checked_ttl
from stagegate.ledger.usage import usage
from stagegate.owners import OwnerRef
from stagegate.requests import StagingRequest

WHO = Principal("alice", "scientist", "vision", "token-id")
OTHER = Principal("bob", "scientist", None, "token-id-2")
AUDITOR = Principal("ada", "auditor", None, "token-id-3")
ADMIN = Principal("root", "admin", None, "token-id-4")
DIGEST = "e" * 64
HOUR = 3600
DAY = 86400.0


def ready_staging(
    ledger: Ledger,
    ttl: int | None = HOUR,
    who: Principal = WHO,
    owner: OwnerRef | None = None,
    digest: str = DIGEST,
) -> str:
    """A staging of 2 GB on node a (of dataset ``digest``, by ``who``, owned by ``owner``),
    planned, admitted and finished: ready, pinned."""
    Nodes(ledger).heartbeat("a", "/nvme/a", 1 << 40, "a@host:1")
    stagings, tasks = StagingSteps(ledger, 30), Tasks(ledger, 30)
    requests = StagingRequests(ledger, 30)
    request = StagingRequest(f"s3://b/{digest[:8]}", nodes=("a",), owner=owner)
    staging, _, (plan,) = requests.submit(who, request, pin_ttl_seconds=ttl)
    assert tasks.claim(plan, "planner") is not None and stagings.begin_planning(staging.id)
    portion = NodePortion("a", digest, 10, 2 * 10**9, [BatchRange("k0", "k9", 10, 2 * 10**9)])
    assert stagings.admit(staging.id, plan, "planner", [portion], {}).state == "transferring"
    for key in tasks.mark_sent(tasks.next_to_send(staging.id)):
        assert tasks.claim(key, "w") is not None and tasks.finish(key, "w", 10, 2 * 10**9)
    (finalize,) = tasks.mark_sent(tasks.next_to_send(staging.id))
    assert tasks.claim(finalize, "w") is not None
    stagings.dataset_ready(staging.id, finalize, "w", fingerprint="f" * 64)
    assert stagings.complete_if_ready(staging.id)
    return staging.id


def test_an_expired_lease_releases_the_staging_once_audited_with_the_reason(ledger: Ledger) -> None:
    job = ready_staging(ledger)
    pins = PinLeases(ledger)
    lease = pins.of([job])[job]
    assert lease.ttl_seconds == HOUR and lease.renewals == 0

    assert pins.expire_due(lease.expires_at - timedelta(seconds=1)) == [], "not yet due"
    assert StagingViews(ledger).view(job).state == "ready"

    later = lease.expires_at + timedelta(seconds=1)
    with ThreadPoolExecutor(4) as pool:  # every worker's reconciler runs the pass
        released = list(pool.map(lambda _: pins.expire_due(later), range(4)))
    assert sorted(j for r in released for j in r) == [job], "released exactly once"
    assert StagingViews(ledger).view(job).state == "released"
    (event,) = AuditTrail(ledger).query(action="stage.released")
    assert event.details["by"] == "stagegate" and event.details["was"] == "ready"
    assert "pin lease expired" in str(event.details["reason"]) and "1h" in str(event.details["reason"])
    # The space is evictable: no pin holds it any more.
    (node,) = Nodes(ledger).all()
    assert node.pinned == 0 and node.datasets[0].pins == 0
    # GB-hours stop at the release: a report a day later bills only the time held.
    (row,) = usage(ledger, period="all", now=datetime.now(UTC) + timedelta(days=1))
    assert row.nvme_gb_hours < 2 * 0.1, row  # 2 GB x (seconds held), not x 24 h


def test_renewing_moves_the_expiry_and_is_audited(ledger: Ledger) -> None:
    job = ready_staging(ledger)
    pins = PinLeases(ledger)
    first = pins.of([job])[job]

    renewed = pins.renew(WHO, job, 4 * HOUR, DAY, DAY)
    assert renewed.ttl_seconds == 4 * HOUR and renewed.renewals == 1
    assert renewed.expires_at > first.expires_at + timedelta(hours=2)
    assert pins.expire_due(first.expires_at + timedelta(seconds=1)) == [], "the renewal counts"
    again = pins.renew(ADMIN, job, None, DAY, DAY)  # an admin may; the TTL stays 4 h
    assert again.ttl_seconds == 4 * HOUR and again.renewals == 2
    events = AuditTrail(ledger).query(action="stage.renewed")
    assert [e.details["by"] for e in events] == ["alice", "root"]


def test_nobody_renews_what_is_not_theirs_nor_past_the_maximum(ledger: Ledger) -> None:
    job = ready_staging(ledger)
    pins = PinLeases(ledger)
    with pytest.raises(NotFoundError):
        pins.renew(OTHER, job, HOUR, DAY, DAY)  # exactly as for a staging that does not exist
    with pytest.raises(PermissionError):
        pins.renew(AUDITOR, job, HOUR, DAY, DAY)
    with pytest.raises(InvalidInputError, match="longer than this service allows"):
        pins.renew(WHO, job, 100 * 365 * DAY, DAY, DAY)  # a hundred years
    with pytest.raises(InvalidInputError, match="at least 60 s"):
        pins.renew(WHO, job, 0, DAY, DAY)
    assert pins.of([job])[job].renewals == 0, "refused renewals change nothing"
    assert AuditTrail(ledger).query(action="stage.renewed") == []

    StagingRequests(ledger).release(WHO, job)
    with pytest.raises(PinReleasedError, match="released"):
        pins.renew(WHO, job, HOUR, DAY, DAY)


def test_a_staging_without_a_lease_never_expires_but_can_be_given_one(ledger: Ledger) -> None:
    job = ready_staging(ledger, ttl=None)  # as submitted before leases existed
    pins = PinLeases(ledger)
    assert pins.of([job]) == {}
    assert pins.expire_due(datetime.now(UTC) + timedelta(days=365)) == []
    lease = pins.renew(WHO, job, None, 2 * HOUR, DAY)  # the operator's default TTL
    assert lease.ttl_seconds == 2 * HOUR


def test_checked_ttl() -> None:
    assert checked_ttl(None, HOUR, DAY) == HOUR
    assert checked_ttl(90.5, HOUR, DAY) == 90
    assert checked_ttl(DAY, HOUR, DAY) == DAY
    for bad in (59, -1, float("nan"), DAY + 1, float("inf")):
        with pytest.raises(InvalidInputError):
            checked_ttl(bad, HOUR, DAY)
