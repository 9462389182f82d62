"""Usage tells moving data from holding it, on each backend: one dataset staged once and then
reused (the issue's case: a cache hit used to count as bytes staged), a hit whose check failed
and was copied afresh, and GB-hours that every holder pays, hit or not."""

from datetime import timedelta

import pytest

from stagegate.ledger import (
    AuditTrail,
    CacheIntegrity,
    Ledger,
    Principal,
    StagingSteps,
    StagingViews,
    Tasks,
)
from stagegate.ledger.usage import usage

from .test_usage import digest_of, service_staging

pytestmark = pytest.mark.integration

MB = 10**6
SIZE = 240 * MB
FINGERPRINT = "f" * 64
ALICE = Principal("alice", "scientist", "vision", "t-alice")
BOB = Principal("bob", "scientist", "vision", "t-bob")
CAROL = Principal("carol", "scientist", "vision", "t-carol")


def sent(tasks: Tasks, job_id: str, kind: str) -> list:  # type: ignore[type-arg]
    keys = [k for k in tasks.mark_sent(tasks.next_to_send(job_id)) if k.kind == kind]
    for key in keys:
        assert tasks.claim(key, "w") is not None
    return keys


def copy_and_finalize(ledger: Ledger, job_id: str) -> None:
    stagings, tasks = StagingSteps(ledger, 30), Tasks(ledger, 30)
    for key in sent(tasks, job_id, "copy"):
        assert tasks.finish(key, "w", 10, SIZE)
    (final,) = sent(tasks, job_id, "finalize")
    stagings.dataset_ready(job_id, final, "w", fingerprint=FINGERPRINT)
    assert stagings.complete_if_ready(job_id)


def test_a_cache_hit_moves_nothing_but_still_holds_the_space(ledger: Ledger) -> None:
    first = service_staging(ledger, ALICE, "mini", {"a": SIZE})
    copy_and_finalize(ledger, first)

    # bob: the same dataset on the same node, a hit that checks out.
    hit = service_staging(ledger, BOB, "mini", {"a": SIZE})
    (verify,) = sent(Tasks(ledger, 30), hit, "verify")
    assert CacheIntegrity(ledger, 30).confirm_hit(verify, "w", digest_of("mini/a"), FINGERPRINT)
    assert StagingViews(ledger).view(hit).state == "ready"

    # carol: a hit whose check failed (the copy was altered): quarantined and copied afresh.
    recopied = service_staging(ledger, CAROL, "mini", {"a": SIZE})
    (verify,) = sent(Tasks(ledger, 30), recopied, "verify")
    CacheIntegrity(ledger, 30).recopy(
        verify, "w", digest_of("mini/a"), [], mismatch="size of x.bin changed", moved_to="/q/x"
    )
    # The share is copied afresh as one batch of the whole share (the test's portion had one).
    stagings, tasks = StagingSteps(ledger, 30), Tasks(ledger, 30)
    (final,) = sent(tasks, recopied, "finalize")
    stagings.dataset_ready(recopied, final, "w", fingerprint="0" * 64)
    assert stagings.complete_if_ready(recopied)

    rows = {r.key: r for r in usage(ledger, period="all")}
    assert (rows["alice"].bytes_from_source, rows["alice"].bytes_from_cache) == (SIZE, 0)
    assert (rows["bob"].bytes_from_source, rows["bob"].bytes_from_cache) == (0, SIZE)
    assert (rows["carol"].bytes_from_source, rows["carol"].bytes_from_cache) == (SIZE, 0)
    assert [rows[u].stagings for u in ("alice", "bob", "carol")] == [1, 1, 1]
    moved = sum(r.bytes_from_source for r in rows.values())
    reused = sum(r.bytes_from_cache for r in rows.values())
    assert (moved, reused) == (2 * SIZE, SIZE), "before: 3 x 240 MB 'staged' for 480 MB moved"

    # Holding is billed to every holder, the hit included: 240 MB each, for as long as each holds it.
    allowed = {e.actor: e.time for e in AuditTrail(ledger).query(action="policy.allowed")}
    later = max(allowed.values()) + timedelta(hours=2)
    held = {r.key: r.nvme_gb_hours for r in usage(ledger, period="all", now=later)}
    for user, start in allowed.items():
        assert held[user] == pytest.approx(0.24 * (later - start) / timedelta(hours=1), rel=1e-9)
