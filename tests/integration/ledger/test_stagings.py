"""The service's staging lifecycle in the ledger, on each backend: windows of batches,
leases, exactly-once completion, release."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

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
    TaskKey,
    Tasks,
)
from stagegate.ledger.nodes import Eviction
from stagegate.ledger.tasks import WINDOW

WHO = Principal("alice", "scientist", "vision", "token-id")
OTHER = Principal("bob", "job", None, "token-id-2")
DIGEST = "d" * 64


def batches(n: int) -> list[BatchRange]:
    return [BatchRange(f"k{i}0", f"k{i}9", 10, 1000) for i in range(n)]


def admitted(ledger: Ledger, who: Principal = WHO, nodes: tuple[str, ...] = ("a", "b"), n: int = 5) -> str:
    """A staging planned and admitted on ``nodes``, each to copy ``n`` batches."""
    registry = Nodes(ledger)
    for node in nodes:
        registry.heartbeat(node, f"/nvme/{node}", 1 << 40, f"{node}@host:1")
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    staging, created, (plan,) = requests.submit(who, source="s3://b/ds", nodes=list(nodes))
    assert created
    assert tasks.claim(plan, "planner") is not None
    assert steps.begin_planning(staging.id)
    portions = [NodePortion(node, DIGEST, 10 * n, 1000 * n, batches(n)) for node in nodes]
    outcome = steps.admit(staging.id, plan, "planner", portions, {})
    assert outcome.state == "transferring"
    return staging.id


def run(tasks: Tasks, key: TaskKey, owner: str = "worker") -> None:
    assert tasks.claim(key, owner) is not None
    assert tasks.finish(key, owner, 10, 1000)


def test_batches_go_out_a_window_at_a_time_and_finalize_after_the_last(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a",), n=5)
    tasks = Tasks(ledger, 30)

    first = tasks.mark_sent(tasks.next_to_send(job))
    assert [k.idx for k in first] == list(range(WINDOW))
    assert tasks.next_to_send(job) == [], "the window is full"
    sent = list(first)
    while len(sent) < 5:
        run(tasks, sent[len(sent) - WINDOW])
        sent += tasks.mark_sent(tasks.next_to_send(job, "a"))
    assert [k.idx for k in sent] == [0, 1, 2, 3, 4]
    for key in sent[-WINDOW:]:
        run(tasks, key)
    assert tasks.next_to_send(job) == [TaskKey(job, "finalize", "a", 0)]


def test_a_claimed_task_is_not_claimed_again_until_its_lease_runs_out(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a",), n=1)
    short = Tasks(ledger, 3.0)  # long enough that w2's claim below comes well within it, loaded or not
    (key,) = short.mark_sent(short.next_to_send(job))
    assert short.claim(key, "w1") is not None
    assert short.claim(key, "w2") is None, "a duplicate message while w1 works"
    time.sleep(3.1)
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _: short.take_expired(), range(4)))
    assert sum(len(t) for t in taken) == 1, "of several reconcilers, one re-sends it"
    assert not short.renew(key, "w1", 1, 1), "w1 lost its lease: it must stop"
    assert short.claim(key, "w2") is not None


def test_completion_is_recorded_once_however_many_callers_race(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a", "b"), n=1)
    steps, tasks = StagingSteps(ledger, 30), Tasks(ledger, 30)
    for node in ("a", "b"):
        run(tasks, TaskKey(job, "copy", node, 0))
        final = TaskKey(job, "finalize", node, 0)
        assert tasks.claim(final, "w") is not None
        assert steps.dataset_ready(job, final, "w") == [job]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: steps.complete_if_ready(job), range(6)))
    assert results.count(True) == 1
    assert Counter(e.action for e in AuditTrail(ledger).query(job=job))["stage.completed"] == 1
    assert StagingViews(ledger).view(job).state == "ready"


def test_a_second_staging_of_the_same_share_waits_for_the_writer_and_completes_with_it(
    ledger: Ledger,
) -> None:
    writer = admitted(ledger, nodes=("a",), n=1)
    waiter = admitted(ledger, who=OTHER, nodes=("a",), n=1)
    tasks, requests = Tasks(ledger, 30), StagingRequests(ledger, 30)
    steps, views = StagingSteps(ledger, 30), StagingViews(ledger)
    assert [t.key.kind for t in tasks.of_job(waiter)] == ["plan"], "no second copy of the same share"

    # The writer is released mid-copy: its batches go on, since another staging waits for them.
    requests.release(WHO, writer)
    run(tasks, TaskKey(writer, "copy", "a", 0))
    final = TaskKey(writer, "finalize", "a", 0)
    assert tasks.claim(final, "w") is not None
    assert steps.dataset_ready(writer, final, "w") == [waiter]
    assert steps.complete_if_ready(waiter)
    assert views.view(waiter).nodes[0].cache_hit


def test_releasing_a_running_staging_nobody_else_waits_for_cancels_it_and_evicts_its_share(
    ledger: Ledger,
) -> None:
    job = admitted(ledger, nodes=("a",), n=3)
    tasks, requests = Tasks(ledger, 30), StagingRequests(ledger, 30)
    (first, _) = tasks.mark_sent(tasks.next_to_send(job))
    assert tasks.claim(first, "w") is not None

    assert requests.release(WHO, job).state == "released"
    assert not tasks.renew(first, "w", 0, 0), "the running batch learns it was cancelled"
    assert {t.state for t in tasks.of_job(job) if t.key.kind != "plan"} == {"cancelled"}
    assert Nodes(ledger).claim_evictions("a") == [Eviction(DIGEST, f"/nvme/a/datasets/{DIGEST}")]
    with pytest.raises(PermissionError):
        requests.release(Principal("ada", "auditor", None, "t"), job)
