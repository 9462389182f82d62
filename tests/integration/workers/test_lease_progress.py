"""A running batch reports its progress at file granularity, rate-limited, through the
ledger the service's views read: the bar of a service staging moves per file, not per batch;
and a planning staging says how many objects its plan step has listed."""

import time

from integration.ledger.test_stagings import WHO, admitted
from stagegate.ledger import (
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    StagingRequests,
    StagingSteps,
    StagingViews,
    TaskKey,
    Tasks,
)
from stagegate.progress import Listed, Progress
from stagegate.workers.lease import PROGRESS_EVERY, LeaseKeeper, TaskCancelledError
from stagegate.workers.listing_progress import ListingRecorder


def _node_progress(ledger: Ledger, job: str) -> tuple[int, int]:
    node = StagingViews(ledger).view(job).nodes[0]
    return node.files_done, node.bytes_done


def _until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_each_file_shows_in_the_view_while_the_batch_runs(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a",), n=1)
    tasks = Tasks(ledger, 120)  # a quarter lease is 30 s: only the progress ticks can show a file
    key = TaskKey(job, "copy", "a", 0)
    assert tasks.claim(key, "w") is not None
    with LeaseKeeper(tasks, key, "w", progress_every=0.1) as lease:
        for files in range(1, 4):
            lease.on_progress(Progress(10, 1000, files_done=files, bytes_done=100 * files))
            seen = _until(lambda f=files: _node_progress(ledger, job) == (f, 100 * f))  # type: ignore[misc]
            assert seen
    assert _node_progress(ledger, job) == (3, 300)


def test_unchanged_progress_is_not_written_again(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a",), n=1)
    tasks = Tasks(ledger, 120)
    key = TaskKey(job, "copy", "a", 0)
    assert tasks.claim(key, "w") is not None
    writes: list[tuple[int, int]] = []
    renew = tasks.renew

    def counting(k: TaskKey, owner: str, files: int, nbytes: int) -> bool:
        writes.append((files, nbytes))
        return renew(k, owner, files, nbytes)

    tasks.renew = counting  # type: ignore[method-assign]
    with LeaseKeeper(tasks, key, "w", progress_every=0.05) as lease:
        lease.on_progress(Progress(10, 1000, files_done=1, bytes_done=100))
        _until(lambda: writes)
        time.sleep(0.5)  # ten ticks with nothing new
    assert writes == [(1, 100)]


def test_a_released_staging_stops_the_copy_at_the_next_file(ledger: Ledger) -> None:
    job = admitted(ledger, nodes=("a",), n=1)
    tasks = Tasks(ledger, 120)
    key = TaskKey(job, "copy", "a", 0)
    assert tasks.claim(key, "w") is not None
    with LeaseKeeper(tasks, key, "w", progress_every=0.05) as lease:
        with ledger.sessions.begin() as session:
            Tasks.cancel_in(session, job)
        lease.on_progress(Progress(10, 1000, files_done=1, bytes_done=100))
        _until(lambda: lease.lost)
        try:
            lease.on_progress(Progress(10, 1000, files_done=2, bytes_done=200))
        except TaskCancelledError:
            pass
        else:
            raise AssertionError("the copy went on after its staging was released")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_planning_staging_shows_the_objects_listed_so_far(ledger: Ledger) -> None:
    Nodes(ledger).heartbeat("a", "/nvme/a", 1 << 40, "a@host:1")
    requests, steps, tasks = StagingRequests(ledger, 30), StagingSteps(ledger, 30), Tasks(ledger, 30)
    staging, _, (plan,) = requests.submit(WHO, source="s3://b/ds", nodes=["a"])
    assert tasks.claim(plan, "planner") is not None
    assert steps.begin_planning(staging.id)
    views, clock = StagingViews(ledger), Clock()
    record = ListingRecorder(steps, staging.id, clock=clock)

    record(Listed(1000, 10_000))
    assert views.view(staging.id).progress.listed_objects == 1000
    clock.now += PROGRESS_EVERY / 2
    record(Listed(2000, 20_000))  # too soon: not written
    assert views.view(staging.id).progress.listed_objects == 1000
    record(Listed(2345, 23_450, done=True))  # the end is always written
    progress = views.view(staging.id).progress
    assert (progress.listed_objects, progress.listed_bytes) == (2345, 23_450)

    steps.record_plan(staging.id, "d" * 64, 2300, 23_000, "v1")
    portions = [NodePortion("a", "d" * 64, 2300, 23_000, [BatchRange("k0", "k9", 2300, 23_000)])]
    steps.admit(staging.id, plan, "planner", portions, {})
    after = views.view(staging.id).progress
    assert after.listed_objects is None, "past planning the view shows copy progress only"
    record(Listed(9999, 1, done=True))  # a late write once planned changes nothing
    assert views.view(staging.id).progress.files_total == 2300
