"""Tests for transfer.progress.ProgressTracker."""

import threading

import pytest

from stagegate.transfer.progress import Progress, ProgressTracker


def test_starts_at_zero() -> None:
    tracker = ProgressTracker(3, 300, None)
    assert tracker.state == Progress(files_total=3, bytes_total=300)


def test_counters_and_callback_snapshots() -> None:
    seen: list[Progress] = []
    tracker = ProgressTracker(3, 300, seen.append)
    tracker.bytes_moved(100)
    tracker.file_done()
    tracker.bytes_moved(60)
    tracker.bytes_retracted(60)  # a failed attempt will be read again
    tracker.file_skipped(200)
    assert seen == [
        Progress(3, 300, files_done=0, bytes_done=100),
        Progress(3, 300, files_done=1, bytes_done=100),
        Progress(3, 300, files_done=1, bytes_done=160),
        Progress(3, 300, files_done=1, bytes_done=100),
        Progress(3, 300, files_done=2, bytes_done=300, files_skipped=1, bytes_skipped=200),
    ]
    assert tracker.state == seen[-1]


def test_snapshots_are_immutable() -> None:
    seen: list[Progress] = []
    tracker = ProgressTracker(1, 10, seen.append)
    tracker.bytes_moved(5)
    first = seen[0]
    tracker.bytes_moved(5)
    assert first.bytes_done == 5
    with pytest.raises(AttributeError):
        first.bytes_done = 99  # type: ignore[misc]


def test_concurrent_updates_are_not_lost() -> None:
    threads_n, per_thread = 8, 2000
    calls = []
    lock = threading.Lock()

    def callback(p: Progress) -> None:
        with lock:
            calls.append(p)

    tracker = ProgressTracker(threads_n * per_thread, threads_n * per_thread * 3, callback)
    start = threading.Barrier(threads_n)

    def work(skip: bool) -> None:
        start.wait()
        for _ in range(per_thread):
            if skip:
                tracker.file_skipped(3)
            else:
                tracker.bytes_moved(4)
                tracker.bytes_retracted(1)
                tracker.file_done()

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    state = tracker.state
    assert state.files_done == threads_n * per_thread
    assert state.bytes_done == threads_n * per_thread * 3
    assert state.files_skipped == threads_n // 2 * per_thread
    assert state.bytes_skipped == threads_n // 2 * per_thread * 3
    # every update produced exactly one snapshot, and the final state was among them
    skippers, copiers = threads_n // 2, threads_n - threads_n // 2
    assert len(calls) == per_thread * (skippers + 3 * copiers)
    assert state in calls
    assert max(p.files_done for p in calls) == state.files_done
