"""Delta admission in the ledger, on each backend: a dataset whose files a cached one holds is
admitted for what it adds, and the cached one is kept (never evicted) until it is written."""

from stagegate.ledger import (
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    Principal,
    StagingRequests,
    StagingSteps,
    TaskKey,
    Tasks,
)
from stagegate.ledger.nodes import held_in

WHO = Principal("alice", "scientist", "vision", "token-id")
V1, V2, V3 = "1" * 64, "2" * 64, "3" * 64


def submit_and_admit(
    ledger: Ledger, source: str, digest: str, size: int, held_by: dict[str, int]
) -> tuple[str, str]:
    """(staging id, state after admission) of a one-batch staging of ``size`` bytes on node a."""
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    staging, _, (plan,) = requests.submit(WHO, source=source, nodes=["a"])
    assert tasks.claim(plan, "planner") is not None
    assert steps.begin_planning(staging.id)
    portion = NodePortion("a", digest, 10, size, [BatchRange("k0", "k9", 10, size)], held_by)
    return staging.id, steps.admit(staging.id, plan, "planner", [portion], {}).state


def write(ledger: Ledger, job: str) -> None:
    tasks, steps = Tasks(ledger, 30), StagingSteps(ledger, 30)
    copy, final = TaskKey(job, "copy", "a", 0), TaskKey(job, "finalize", "a", 0)
    assert tasks.claim(copy, "w") is not None and tasks.finish(copy, "w", 10, 0)
    assert tasks.claim(final, "w") is not None
    steps.dataset_ready(job, final, "w")
    assert steps.complete_if_ready(job)


def evicting(ledger: Ledger) -> set[str]:
    with ledger.sessions.begin() as session:
        return {d.digest for d in held_in(session, "a") if d.state == "evicting"}


def test_a_dataset_v2_takes_from_is_kept_until_v2_is_written(ledger: Ledger) -> None:
    Nodes(ledger).heartbeat("a", "/nvme/a", 100, "a@host:1")
    v1, state = submit_and_admit(ledger, "s3://b/v1", V1, 80, {})
    assert state == "transferring"
    write(ledger, v1)
    StagingRequests(ledger, 30).release(WHO, v1)  # unpinned: the one dataset evictable

    # v2 is 80 bytes of which v1 holds 72: admitted for 8, with 12 of 100 left and v1 kept.
    v2, state = submit_and_admit(ledger, "s3://b/v2", V2, 80, {V1: 72})
    assert state == "transferring" and evicting(ledger) == set()
    # A third dataset of 20 would fit only by evicting v1, which v2 is about to take from.
    _, state = submit_and_admit(ledger, "s3://b/v3", V3, 20, {})
    assert state == "failed", "not admitted: v1 is held for v2"
    assert evicting(ledger) == set()

    write(ledger, v2)  # v2 written: v1 no longer needs keeping
    _, state = submit_and_admit(ledger, "s3://b/v3b", V3, 20, {})
    assert state == "transferring"
    assert evicting(ledger) == {V1}
