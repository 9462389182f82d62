"""Usage for chargeback over a scripted day, on each backend.

Two users in two projects stage through the service (``StagingRequests``, ``StagingSteps``), stage
embedded-style and egress (events appended as the embedded CLI and the egress worker append
them). Event times are the ledger's clock, so every expected figure is worked out below from
the stored times, with ``now`` (and since/until windows) placed at known offsets from them.
"""

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from stagegate.errors import InvalidInputError
from stagegate.ledger import (
    AuditTrail,
    BatchRange,
    Jobs,
    Ledger,
    NewEvent,
    NodePortion,
    Nodes,
    Principal,
    StagingRequests,
    StagingSteps,
    TaskKey,
    Tasks,
)
from stagegate.ledger import usage as usage_module
from stagegate.ledger.usage import UsageRow, next_boundary, period_of, usage

pytestmark = pytest.mark.integration

ALICE = Principal("alice", "scientist", "vision", "t-alice")
BOB = Principal("bob", "job", "nlp", "t-bob")
HOUR = timedelta(hours=1)
GB = 10**9


def hours(start: datetime, end: datetime) -> float:
    return (end - start) / HOUR


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def service_staging(ledger: Ledger, who: Principal, name: str, node_bytes: dict[str, int]) -> str:
    """A staging submitted, planned and admitted onto ``node_bytes``'s nodes (one copy batch
    each), as the service's plan step does it: ``policy.allowed`` carries node_bytes."""
    registry = Nodes(ledger)
    for node in node_bytes:
        registry.heartbeat(node, f"/nvme/{node}", 1 << 40, f"{node}@host:1")
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    staging, created, (plan,) = requests.submit(who, source=f"s3://datasets/{name}", nodes=list(node_bytes))
    assert created
    assert tasks.claim(plan, "planner") is not None
    assert steps.begin_planning(staging.id)
    portions = [
        NodePortion(node, digest_of(f"{name}/{node}"), 10, n, [BatchRange("a", "z", 10, n)])
        for node, n in node_bytes.items()
    ]
    steps.record_plan(staging.id, portions[0].digest, 10, max(node_bytes.values()), "policy-v1")
    outcome = steps.admit(staging.id, plan, "planner", portions, {"offending": 0, "highest_label": "public"})
    assert outcome.state == "transferring"
    return staging.id


def complete(ledger: Ledger, job_id: str, nodes: list[str]) -> None:
    """Every node copies its batch and finalizes; the staging completes (``stage.completed``)."""
    steps, tasks = StagingSteps(ledger, 30), Tasks(ledger, 30)
    for node in nodes:
        copy = TaskKey(job_id, "copy", node, 0)
        assert tasks.claim(copy, "w") is not None
        assert tasks.finish(copy, "w", 10, 1)
        final = TaskKey(job_id, "finalize", node, 0)
        assert tasks.claim(final, "w") is not None
        steps.dataset_ready(job_id, final, "w")
    assert steps.complete_if_ready(job_id)


def embedded_staging(ledger: Ledger, actor: str, nbytes: int) -> str:
    """What the embedded CLI records: a job without a project, and its three events."""
    job = Jobs(ledger).create(
        kind="stage", actor=actor, role="local", source="/data/ds", destination="/nvme/x"
    )
    requested = NewEvent(
        actor=actor, role="local", action="stage.requested", source="/data/ds", destination="/nvme/x",
        job_id=job.id,
    )  # fmt: skip
    trail = AuditTrail(ledger)
    trail.append(requested)
    trail.append(replace(requested, action="policy.allowed", decision="allow", bytes=nbytes, files=3))
    trail.append(replace(requested, action="stage.completed", bytes=nbytes, files=3))
    return job.id


def egress(ledger: Ledger, who: Principal, nbytes: int, action: str = "egress.completed") -> str:
    """An egress as workers/egress.py records it: the project travels in the details."""
    dest = "s3://artifacts/ckpt"
    job = Jobs(ledger).create(
        kind="egress", actor=who.user, role=who.role, source="/nvme/runs/r7", destination=dest
    )
    details: dict[str, object] = {
        "selected": ["checkpoint-500"],
        "checksums": {},
        "project": who.project,
        "node": "a",
    }
    AuditTrail(ledger).append(
        NewEvent(
            actor=who.user, role=who.role, action=action, source="/nvme/runs/r7", destination=dest,
            job_id=job.id, bytes=nbytes, files=2, details=details,
        )
    )  # fmt: skip
    return job.id


@dataclass
class Day:
    """The stored times the expected figures are computed from."""

    a1_allowed: datetime  # alice: a, b x 3 GB, completed, released
    a1_released: datetime
    a2_allowed: datetime  # alice: a x 2 GB, completed, still held
    b1_allowed: datetime  # bob: shard a 1 GB + b 0.5 GB, completed, still held
    b2_allowed: datetime  # bob: a, b x 4 GB, failed before completing
    b2_failed: datetime
    first: datetime
    last: datetime


def when(ledger: Ledger, job_id: str, action: str) -> datetime:
    (event,) = AuditTrail(ledger).query(job=job_id, action=action)
    return event.time


def scripted_day(ledger: Ledger) -> Day:
    a1 = service_staging(ledger, ALICE, "imagenet", {"a": 3 * GB, "b": 3 * GB})
    complete(ledger, a1, ["a", "b"])
    b1 = service_staging(ledger, BOB, "wiki-shards", {"a": GB, "b": GB // 2})
    complete(ledger, b1, ["a", "b"])
    a2 = service_staging(ledger, ALICE, "coco", {"a": 2 * GB})
    complete(ledger, a2, ["a"])
    b2 = service_staging(ledger, BOB, "common-crawl", {"a": 4 * GB, "b": 4 * GB})
    embedded_staging(ledger, "bob", 700_000_000)
    egress(ledger, ALICE, 500_000_000)
    egress(ledger, BOB, 250_000_000)
    egress(ledger, BOB, 250_000_000)
    egress(ledger, BOB, 9 * GB, action="egress.failed")  # counts for nothing
    StagingRequests(ledger).release(ALICE, a1)
    StagingSteps(ledger).fail(b2, "node b: disk full")
    # A denied staging: no pin, no bytes.
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    denied, _, (plan,) = requests.submit(ALICE, source="s3://datasets/patients", nodes=["a"])
    assert tasks.claim(plan, "planner") is not None and steps.begin_planning(denied.id)
    steps.deny(denied.id, plan, "planner", ["x.csv is confidential"], {})

    events = AuditTrail(ledger).query()
    assert [e.action for e in events].count("stage.completed") == 4
    return Day(
        a1_allowed=when(ledger, a1, "policy.allowed"),
        a1_released=when(ledger, a1, "stage.released"),
        a2_allowed=when(ledger, a2, "policy.allowed"),
        b1_allowed=when(ledger, b1, "policy.allowed"),
        b2_allowed=when(ledger, b2, "policy.allowed"),
        b2_failed=when(ledger, b2, "stage.failed"),
        first=events[0].time,
        last=events[-1].time,
    )


def pinned_only(row: UsageRow) -> float:
    """The GB-hours of a row that has nothing else: no staging or egress completed in it."""
    assert (row.bytes_from_source, row.bytes_from_cache, row.stagings, row.bytes_egressed, row.egresses) == (
        0,
        0,
        0,
        0,
        0,
    ), row
    return row.nvme_gb_hours


def by_key(rows: list[UsageRow]) -> dict[tuple[str, str], UsageRow]:
    return {(r.period, r.key): r for r in rows}


def test_a_day_by_user(ledger: Ledger) -> None:
    day = scripted_day(ledger)
    now = day.a2_allowed + 1.5 * HOUR  # the report is taken 1.5 h after alice's second staging
    rows = usage(ledger, by="user", period="all", now=now)
    assert [(r.period, r.key) for r in rows] == [("all", "alice"), ("all", "bob")]
    alice, bob = rows

    # alice: imagenet replicated on 2 nodes x 3 GB = 6 GB made available, plus coco 1 node x 2 GB.
    assert alice.bytes_from_source == 2 * 3 * GB + 1 * 2 * GB == 8_000_000_000
    assert alice.stagings == 2
    assert (alice.bytes_egressed, alice.egresses) == (500_000_000, 1)
    # imagenet: 2 nodes x 3 GB x (released - allowed); coco, still held: 1 node x 2 GB x 1.5 h = 3.0.
    expected_alice = 2 * 3.0 * hours(day.a1_allowed, day.a1_released) + 1 * 2.0 * 1.5
    assert alice.nvme_gb_hours == pytest.approx(expected_alice, rel=1e-9)
    assert alice.nvme_gb_hours > 3.0

    # bob: wiki shards 1 GB + 0.5 GB, plus the embedded staging's 0.7 GB; common-crawl never completed.
    assert bob.bytes_from_source == GB + GB // 2 + 700_000_000 == 2_200_000_000
    assert bob.stagings == 2
    assert (bob.bytes_egressed, bob.egresses) == (2 * 250_000_000, 2), "the failed egress counts for nothing"
    # wiki shards, still held: 1.5 GB x (now - allowed); common-crawl: 2 nodes x 4 GB x (failed - allowed);
    # the embedded staging pins nothing.
    expected_bob = 1.5 * hours(day.b1_allowed, now) + 2 * 4.0 * hours(day.b2_allowed, day.b2_failed)
    assert bob.nvme_gb_hours == pytest.approx(expected_bob, rel=1e-9)
    assert hours(day.b1_allowed, now) >= 1.5


def test_a_window_clips_the_pins_and_leaves_out_what_happened_before_it(ledger: Ledger) -> None:
    day = scripted_day(ledger)
    t = day.last  # every event is at or before t
    # The window [t + 0.5 h, t + 2 h), seen at t + 3 h: only the two pins still held are in it,
    # each for exactly 1.5 h; every counted event happened before it.
    rows = usage(ledger, by="user", period="all", since=t + 0.5 * HOUR, until=t + 2 * HOUR, now=t + 3 * HOUR)
    assert [(r.period, r.key) for r in rows] == [("all", "alice"), ("all", "bob")]
    alice, bob = rows
    assert pinned_only(alice) == pytest.approx(1 * 2.0 * 1.5)  # coco: 1 node x 2 GB x 1.5 h = 3.0 GB-h
    assert pinned_only(bob) == pytest.approx(1.5 * 1.5)  # wiki shards: (1 GB + 0.5 GB) x 1.5 h = 2.25 GB-h

    # until before now: the held pins end at until. [t + 0.5 h, t + 1 h) at now = t + 3 h: 0.5 h each.
    rows = usage(ledger, by="user", period="all", since=t + 0.5 * HOUR, until=t + HOUR, now=t + 3 * HOUR)
    assert [r.key for r in rows] == ["alice", "bob"]
    assert pinned_only(rows[0]) == pytest.approx(2.0 * 0.5)  # 1.0
    assert pinned_only(rows[1]) == pytest.approx(1.5 * 0.5)  # 0.75

    # A window ending before anything happened is empty; so is one starting after now.
    assert usage(ledger, by="user", until=day.first - timedelta(seconds=1)) == []
    assert usage(ledger, by="user", since=t + HOUR, now=t + HOUR / 2) == []

    # A window holding the whole day counts every staging and egress once, as without a window.
    whole = usage(
        ledger, by="user", period="all", since=day.first, until=t + timedelta(seconds=1), now=t + HOUR
    )
    assert [(r.key, r.bytes_from_source, r.stagings, r.bytes_egressed, r.egresses) for r in whole] == [
        ("alice", 8 * GB, 2, 500_000_000, 1),
        ("bob", 2_200_000_000, 2, 500_000_000, 2),
    ]


def test_by_project_split_at_the_month_boundary(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    day = scripted_day(ledger)
    boundary = next_boundary(day.last, "month")
    assert boundary is not None
    this_month, next_month = period_of(day.last, "month"), period_of(boundary, "month")
    assert period_of(day.first, "month") == this_month, "the scripted day ran across a month's end"
    now = boundary + 2 * HOUR  # two hours into the next month

    rows = by_key(usage(ledger, by="project", period="month", now=now))
    assert sorted(rows) == [
        (this_month, "(none)"),
        (this_month, "nlp"),
        (this_month, "vision"),
        (next_month, "nlp"),
        (next_month, "vision"),
    ]
    # The embedded staging's job has no project.
    none = rows[this_month, "(none)"]
    assert (none.bytes_from_source, none.stagings, none.nvme_gb_hours) == (700_000_000, 1, 0.0)
    assert (none.bytes_from_cache, none.egresses) == (0, 0)

    vision = rows[this_month, "vision"]
    assert (vision.bytes_from_source, vision.stagings) == (8 * GB, 2)
    # The egress's project comes from its details (its job row has none).
    assert (vision.bytes_egressed, vision.egresses) == (500_000_000, 1)
    # imagenet: 2 x 3 GB x (released - allowed); coco: 2 GB x (boundary - allowed) this month ...
    expected = 2 * 3.0 * hours(day.a1_allowed, day.a1_released) + 2.0 * hours(day.a2_allowed, boundary)
    assert vision.nvme_gb_hours == pytest.approx(expected, rel=1e-9)
    # ... and 2 GB x 2 h = 4.0 GB-h next month.
    assert pinned_only(rows[next_month, "vision"]) == pytest.approx(2.0 * 2)

    nlp = rows[this_month, "nlp"]
    assert (nlp.bytes_from_source, nlp.stagings) == (1_500_000_000, 1)
    assert (nlp.bytes_egressed, nlp.egresses) == (500_000_000, 2)
    expected = 1.5 * hours(day.b1_allowed, boundary) + 2 * 4.0 * hours(day.b2_allowed, day.b2_failed)
    assert nlp.nvme_gb_hours == pytest.approx(expected, rel=1e-9)
    # wiki shards: 1.5 GB x 2 h = 3.0 GB-h next month.
    assert pinned_only(rows[next_month, "nlp"]) == pytest.approx(1.5 * 2)

    # Projects are looked up a chunk of events at a time: tiny chunks give the same report.
    monkeypatch.setattr(usage_module, "CHUNK", 2)
    assert by_key(usage(ledger, by="project", period="month", now=now)) == rows


def test_bad_arguments(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError, match="timezone"):
        usage(ledger, since=datetime(2026, 11, 1))
    with pytest.raises(InvalidInputError, match="before until"):
        usage(ledger, since=datetime(2026, 11, 2, tzinfo=UTC), until=datetime(2026, 11, 1, tzinfo=UTC))
    with pytest.raises(InvalidInputError, match="by must be"):
        usage(ledger, by="team")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="period must be"):
        usage(ledger, period="week")  # type: ignore[arg-type]
    assert usage(ledger) == []
