"""Keeping a task's lease alive while it runs, reporting its progress, and noticing when it is
taken away."""

import logging
import threading
from types import TracebackType
from typing import Self

from stagegate.ledger import TaskKey, Tasks
from stagegate.ledger.plan_shares import PlanShares
from stagegate.transfer import Progress

log = logging.getLogger(__name__)

# How often, at most, a running batch writes its progress to the ledger: often enough that the
# service's bar moves per file (a batch holds up to ~1,000 files), rarely enough that a node
# copying small files does not turn every file into a database write.
PROGRESS_EVERY = 0.5  # seconds


class TaskCancelledError(Exception):
    """The task is no longer ours (the staging was released, or the lease was lost)."""


class _InBackground:
    """Runs ``_run`` in a daemon thread for the length of a ``with`` block."""

    _stop: threading.Event
    _thread: threading.Thread

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


class LeaseKeeper(_InBackground):
    """Renews the lease every quarter lease from a thread, and records the batch's progress
    whenever it changed, at most every :data:`PROGRESS_EVERY` seconds (each write also renews
    the lease, and both are refused once the task is no longer ours); the copy's progress
    callback raises once a renewal is refused, which stops the engine."""

    def __init__(
        self, tasks: Tasks, key: TaskKey, owner: str, progress_every: float = PROGRESS_EVERY
    ) -> None:
        self._tasks, self._key, self._owner = tasks, key, owner
        self._period = max(0.5, tasks.lease.total_seconds() / 4)
        self._tick = min(self._period, progress_every)
        self._progress = Progress(0, 0)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{key.kind}-{key.idx}", daemon=True)

    def on_progress(self, progress: Progress) -> None:
        self._progress = progress
        if self._lost.is_set():
            raise TaskCancelledError(f"{self._key.kind} task of {self._key.job_id} was cancelled")

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def _run(self) -> None:
        written = Progress(0, 0)
        since_renewal = 0.0
        while not self._stop.wait(self._tick):
            since_renewal += self._tick
            p = self._progress
            if p == written and since_renewal < self._period:
                continue  # nothing new to show, and the lease is not due
            try:
                if not self._tasks.renew(self._key, self._owner, p.files_done, p.bytes_done):
                    self._lost.set()
                    return
            except Exception as exc:  # the ledger is briefly unreachable: try again next tick
                log.warning("could not renew the lease of %s: %s", self._key, exc)
                continue
            written, since_renewal = p, 0.0


class PlanShareLease(_InBackground):
    """Keeps the lease of the shared plan a plan task is making (``ledger.plan_shares``), beside
    the task's own :class:`LeaseKeeper`: a long listing is not taken over while its planner
    lives, and is once it dies."""

    def __init__(self, shares: PlanShares, share: str, job_id: str, owner: str) -> None:
        self._shares, self._share, self._job_id, self._owner = shares, share, job_id, owner
        self._period = max(0.5, shares.lease.total_seconds() / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-plan-share", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self._shares.renew(self._share, self._job_id, self._owner):
                    return  # taken over: its new planner's plan is the one shared
            except Exception as exc:  # the ledger is briefly unreachable: try again next period
                log.warning("could not renew the lease of the plan of %s: %s", self._job_id, exc)
