"""GET /metrics: parses as the Prometheus text format, and moves when work happens.

Work is scripted through the ledger as the workers would do it (submit, plan, admit, copy,
finalize, complete; a denial; an egress), so every figure has a number known in advance.
"""

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker

from integration.api.conftest import World
from stagegate.api.app import create_app
from stagegate.api.metrics import LedgerCollector
from stagegate.ledger import (
    AuditTrail,
    BatchRange,
    CacheIntegrity,
    Jobs,
    Ledger,
    NewEvent,
    NodePortion,
    StagingSteps,
    StagingViews,
    TaskKey,
    Tasks,
    create_ledger_engine,
)
from stagegate.ledger.metrics_queries import EventTotals, catch_up

pytestmark = pytest.mark.integration

DIGEST = "e" * 64
FILES, BYTES = 30, 3_000_000
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(world: World) -> Samples:
    response = world.client.get("/metrics")  # no token: like any exporter
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def planned(world: World, who: str, job_id: str | None = None) -> tuple[str, TaskKey]:
    """A staging on gpu-01 (``job_id``, or a new one) whose plan step is running: claimed,
    planning, plan recorded."""
    staging = world.staging_of(who) if job_id is None else StagingViews(world.ledger).view(job_id)
    steps, tasks = StagingSteps(world.ledger, 30), Tasks(world.ledger, 30)
    plan = TaskKey(staging.id, "plan", "", 0)
    assert tasks.claim(plan, "planner") is not None
    assert steps.begin_planning(staging.id)
    steps.record_plan(staging.id, DIGEST, FILES, BYTES, "policy-v1")
    return staging.id, plan


def admit(world: World, job_id: str, plan: TaskKey, batches: int = 3) -> str:
    share = [BatchRange(f"k{i}0", f"k{i}9", FILES // batches, BYTES // batches) for i in range(batches)]
    portion = NodePortion("gpu-01", DIGEST, FILES, BYTES, share)
    details: dict[str, object] = {"highest_label": "public"}
    return StagingSteps(world.ledger, 30).admit(job_id, plan, "planner", [portion], details).state


def verified_hit(world: World, job_id: str) -> str:
    """The node's worker checks the hit (the fingerprint matches, as finalize recorded it)."""
    key = TaskKey(job_id, "verify", "gpu-01", 0)
    assert Tasks(world.ledger, 30).claim(key, "worker") is not None
    assert CacheIntegrity(world.ledger).confirm_hit(key, "worker", DIGEST, "fp")
    return StagingViews(world.ledger).view(job_id).state


def copy_and_finish(world: World, job_id: str) -> None:
    steps, tasks = StagingSteps(world.ledger, 30), Tasks(world.ledger, 30)
    for task in tasks.of_job(job_id):
        if task.key.kind == "copy":
            assert tasks.claim(task.key, "worker") is not None
            assert tasks.finish(task.key, "worker", task.files, task.bytes)
    final = TaskKey(job_id, "finalize", "gpu-01", 0)
    assert tasks.claim(final, "worker") is not None
    assert steps.dataset_ready(job_id, final, "worker", "fp") == [job_id]
    assert steps.complete_if_ready(job_id)


def test_metrics_parse_and_start_at_zero(world: World) -> None:
    samples = scrape(world)

    assert value(samples, "stagegate_ledger_up") == 1
    for state in ("pending", "planning", "transferring", "ready", "failed", "denied", "released"):
        assert value(samples, "stagegate_stagings", state=state) == 0
    for node in ("gpu-01", "gpu-02"):
        assert value(samples, "stagegate_node_capacity_bytes", node=node) == 2 * 10**12
        assert value(samples, "stagegate_node_used_bytes", node=node) == 0
        assert value(samples, "stagegate_node_pinned_bytes", node=node) == 0
        assert value(samples, "stagegate_node_alive", node=node) == 1
        for state in ("queued", "waiting"):
            assert value(samples, "stagegate_queue_depth", queue=f"node.{node}", node=node, state=state) == 0
    assert value(samples, "stagegate_queue_depth", queue="stagegate.plan", node="", state="queued") == 0
    assert not [name for name, _ in samples if name.startswith(("stagegate_bytes_moved", "stagegate_policy"))]
    assert "process_cpu_seconds_total" in {name for name, _ in samples}


def test_metrics_move_when_work_happens(world: World) -> None:
    scrape(world)  # the collector has folded the trail so far; what follows must be added to it
    plan_queue = {"queue": "stagegate.plan", "node": "", "state": "queued"}
    node_queue = {"queue": "node.gpu-01", "node": "gpu-01"}

    # Submitted: pending, its plan task queued; then a worker takes the plan.
    submitted = world.staging_of("scientist")
    samples = scrape(world)
    assert value(samples, "stagegate_stagings", state="pending") == 1
    assert value(samples, "stagegate_queue_depth", **plan_queue) == 1
    first, plan = planned(world, "scientist", submitted.id)
    samples = scrape(world)
    assert value(samples, "stagegate_stagings", state="planning") == 1
    assert value(samples, "stagegate_queue_depth", **plan_queue) == 0

    # Admitted: three batches waiting on gpu-01, two of them sent (the window).
    assert admit(world, first, plan) == "transferring"
    tasks = Tasks(world.ledger, 30)
    sent = tasks.mark_sent(tasks.next_to_send(first))
    samples = scrape(world)
    assert value(samples, "stagegate_stagings", state="transferring") == 1
    assert value(samples, "stagegate_queue_depth", **plan_queue) == 0
    assert value(samples, "stagegate_queue_depth", **node_queue, state="queued") == len(sent) == 2
    assert value(samples, "stagegate_queue_depth", **node_queue, state="waiting") == 3 + 1 - 2  # + finalize
    assert value(samples, "stagegate_node_used_bytes", node="gpu-01") == BYTES
    assert value(samples, "stagegate_node_pinned_bytes", node="gpu-01") == BYTES

    # Copied and completed; then another user stages the same share: a cache hit, ready at once.
    copy_and_finish(world, first)
    second, plan2 = planned(world, "other")
    assert admit(world, second, plan2) == "transferring"  # until its node checked the copy
    assert verified_hit(world, second) == "ready"
    # A third staging is denied: confidential data, staging allows public only.
    third, plan3 = planned(world, "job")
    StagingSteps(world.ledger, 30).deny(
        third, plan3, "planner", ["k00: label confidential above public"], {"highest_label": "confidential"}
    )
    # And a checkpoint egress completes, as workers/egress.py records it.
    egress = Jobs(world.ledger).create(
        kind="egress", actor="sam", role="scientist", source="/nvme/runs/r7", destination="s3://models/r7"
    )
    Jobs(world.ledger).update(egress.id, state="completed")
    AuditTrail(world.ledger).append(
        NewEvent(
            actor="sam",
            role="scientist",
            action="egress.completed",
            job_id=egress.id,
            bytes=12_345,
            files=2,
            details={"selected": ["checkpoint-500"], "project": "vision", "node": "gpu-01"},
        )
    )

    samples = scrape(world)
    assert value(samples, "stagegate_stagings", state="ready") == 2
    assert value(samples, "stagegate_stagings", state="denied") == 1
    assert value(samples, "stagegate_stagings", state="transferring") == 0
    assert value(samples, "stagegate_egresses", state="completed") == 1
    assert value(samples, "stagegate_queue_depth", **node_queue, state="queued") == 0
    assert value(samples, "stagegate_queue_depth", **node_queue, state="waiting") == 0
    moved = {"direction": "stage", "project": "vision"}
    assert value(samples, "stagegate_bytes_moved_total", **moved, user="sam") == BYTES
    assert value(samples, "stagegate_bytes_moved_total", **moved, user="bob") == BYTES
    egressed = {"direction": "egress", "user": "sam", "project": "vision"}
    assert value(samples, "stagegate_bytes_moved_total", **egressed) == 12_345
    assert value(samples, "stagegate_cache_hits_total", node="gpu-01") == 1
    assert value(samples, "stagegate_policy_denials_total", zone="staging", reason="confidential") == 1
    assert value(samples, "stagegate_node_pinned_bytes", node="gpu-01") == BYTES

    # Scraped again with nothing new: counters hold (the new events are folded once).
    again = scrape(world)
    counted = ("stagegate_bytes_moved_total", "stagegate_cache_hits_total", "stagegate_policy_denials_total")
    for name in counted:
        before = {k: v for k, v in samples.items() if k[0] == name}
        assert {k: v for k, v in again.items() if k[0] == name} == before

    # A fresh collector (another API replica, or this one restarted) reads the same totals.
    fresh = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in LedgerCollector(world.ledger).collect()
        for sample in family.samples
    }
    counters = {k: v for k, v in samples.items() if k[0].endswith("_total") and k[0].startswith("stagegate_")}
    assert {k: v for k, v in fresh.items() if k in counters} == counters


def test_totals_read_in_pages_equal_one_pass(world: World) -> None:
    first, plan = planned(world, "scientist")
    admit(world, first, plan)
    copy_and_finish(world, first)
    for who in ("other", "job"):
        job_id, plan = planned(world, who)
        assert admit(world, job_id, plan) == "transferring"
        assert verified_hit(world, job_id) == "ready"
    denied, plan = planned(world, "scientist")
    StagingSteps(world.ledger, 30).deny(denied, plan, "planner", ["no"], {"highest_label": None})
    one_pass = catch_up(world.ledger, EventTotals())
    paged = catch_up(world.ledger, EventTotals(), page_size=1)
    assert (paged.bytes_moved, paged.cache_hits, paged.denials, paged.seq) == (
        one_pass.bytes_moved,
        one_pass.cache_hits,
        one_pass.denials,
        one_pass.seq,
    )
    assert one_pass.cache_hits == {"gpu-01": 2}, "the second and third stagings found the first's share"
    assert one_pass.denials == {("staging", "unlabelled"): 1}
    assert sum(one_pass.bytes_moved.values()) == 3 * BYTES
    assert one_pass.seq == AuditTrail(world.ledger).head()[0]  # type: ignore[index]


def test_an_unreadable_ledger_is_reported_not_raised(world: World) -> None:
    nowhere = create_ledger_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens
    app = create_app(Ledger(nowhere, sessionmaker(nowhere)), world.dispatcher, decision_wait=0)
    with TestClient(app) as client:
        response = client.get("/metrics")
    nowhere.dispose()
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["stagegate_ledger_up"].samples[0].value == 0
    assert "stagegate_stagings" not in families, "no state is made up"
