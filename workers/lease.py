"""Keeping a task's lease alive while it runs, and noticing when it is taken away."""

import logging
import threading
from types import TracebackType

from stagegate.ledger import TaskKey, Tasks
from stagegate.ledger.plan_shares import PlanShares
from stagegate.transfer import Progress

log = logging.getLogger(__name__)


class TaskCancelledError(Exception):
    """The task is no longer ours (the staging was released, or the lease was lost)."""


class LeaseKeeper:
    """Renews the lease every quarter lease from a thread, reporting the batch's progress;
    the copy's progress callback raises once a renewal is refused, which stops the engine."""

    def __init__(self, tasks: Tasks, key: TaskKey, owner: str) -> None:
        self._tasks, self._key, self._owner = tasks, key, owner
        self._period = max(0.5, tasks.lease.total_seconds() / 4)
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

    def _renew(self) -> bool:
        p = self._progress
        return self._tasks.renew(self._key, self._owner, p.files_done, p.bytes_done)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self._renew():
                    self._lost.set()
                    return
            except Exception as exc:  # the ledger is briefly unreachable: try again next period
                log.warning("could not renew the lease of %s: %s", self._key, exc)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


class PlanLeaseKeeper(LeaseKeeper):
    """Also keeps the lease of the shared plan the task makes (``ledger.plan_shares``): a long
    listing is not taken over while its planner lives, and is once it dies."""

    def __init__(self, tasks: Tasks, key: TaskKey, owner: str, shares: PlanShares, share: str) -> None:
        super().__init__(tasks, key, owner)
        self._shares, self._share = shares, share

    def _renew(self) -> bool:
        return super()._renew() & self._shares.renew(self._share, self._key.job_id, self._owner)
