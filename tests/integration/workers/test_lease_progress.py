"""A running batch reports its progress at file granularity, rate-limited, through the
ledger the service's views read: the bar of a service staging moves per file, not per batch."""

import time

from integration.ledger.test_stagings import admitted
from stagegate.ledger import Ledger, StagingViews, TaskKey, Tasks
from stagegate.progress import Progress
from stagegate.workers.lease import LeaseKeeper, TaskCancelledError


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
