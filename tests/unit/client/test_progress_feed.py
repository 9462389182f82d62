"""The caller's progress callback sees snapshots one at a time and never going backwards."""

import itertools
import threading

from hypothesis import given
from hypothesis import strategies as st

from stagegate.client.progress_feed import OrderedProgress, ordered
from stagegate.progress import Progress


def snap(files: int, size: int) -> Progress:
    return Progress(files_total=10, bytes_total=1000, files_done=files, bytes_done=size)


def test_late_and_retracted_snapshots_are_dropped() -> None:
    seen: list[Progress] = []
    feed = OrderedProgress(seen.append)
    for p in [snap(0, 0), snap(1, 100), snap(0, 50), snap(1, 80), snap(1, 100), snap(2, 150), snap(10, 1000)]:
        feed(p)
    assert seen == [snap(0, 0), snap(1, 100), snap(2, 150), snap(10, 1000)]


@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 1000))))
def test_whatever_arrives_the_callback_sees_an_increasing_sequence(order: list[tuple[int, int]]) -> None:
    seen: list[Progress] = []
    feed = OrderedProgress(seen.append)
    for files, size in [*order, (10, 1000)]:
        feed(snap(files, size))
    pairs = [(p.files_done, p.bytes_done) for p in seen]
    assert all(a[0] <= b[0] and a[1] <= b[1] and a != b for a, b in itertools.pairwise(pairs))
    assert pairs[-1] == (10, 1000)  # the finished snapshot always comes through


def test_the_callback_is_never_run_by_two_threads_at_once() -> None:
    inside = threading.Semaphore(1)
    overlaps: list[int] = []

    def callback(p: Progress) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(p.bytes_done)
            return
        try:
            threading.Event().wait(0.0005)
        finally:
            inside.release()

    feed = OrderedProgress(callback)
    threads = [
        threading.Thread(target=lambda t=t: [feed(snap(1, t * 1000 + i)) for i in range(200)])
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_no_callback_means_none() -> None:
    assert ordered(None) is None
