"""Eight writer processes appending at once leave one unforked chain on each backend."""

import itertools
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from integration.ledger.helpers import append_many
from stagegate.ledger import AuditTrail, NewEvent, open_ledger

WRITERS = 8
EACH = 200


def test_processes_never_fork_the_chain(ledger_url: str) -> None:
    open_ledger(ledger_url).close()  # migrate once up front; the writers also race to open it
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=append_many, args=(ledger_url, n, EACH, start)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0] * WRITERS

    with open_ledger(ledger_url) as ledger:
        trail = AuditTrail(ledger)
        verdict = trail.verify()
        assert verdict.intact, verdict
        assert verdict.checked == WRITERS * EACH
        events = trail.query()
        assert [e.seq for e in events] == list(range(1, WRITERS * EACH + 1))
        for n in range(WRITERS):
            assert [e.bytes for e in events if e.actor == f"writer-{n}"] == list(range(EACH))
        # The writers really interleaved: the chain is not eight runs of 200 in a row.
        switches = sum(1 for a, b in itertools.pairwise(events) if a.actor != b.actor)
        assert switches > WRITERS


def test_threads_never_fork_the_chain(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        trail = AuditTrail(ledger)

        def write(n: int) -> None:
            for _ in range(25):
                trail.append(NewEvent(actor=f"thread-{n}", role="worker", action="stage"))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
        verdict = trail.verify()
        assert verdict.intact and verdict.checked == 200


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as writer, open_ledger(url) as reader:
        trail = AuditTrail(writer)
        trail.append(NewEvent(actor="a", role="r", action="x"))
        with writer.engine.begin():  # BEGIN IMMEDIATE: holds the write lock
            started = time.monotonic()
            reading = AuditTrail(reader)
            assert reading.head() is not None and len(reading.query()) == 1
            assert reading.verify().intact
            assert time.monotonic() - started < 20  # under the 30 s busy timeout: it did not wait
