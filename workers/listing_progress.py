"""How far a service staging's plan step has listed its source, written to the ledger so
``stagegate stage --wait`` can show it: a listing of millions of objects takes minutes, and a
staging that says nothing while it plans looks hung."""

import logging
import time
from collections.abc import Callable

from stagegate.ledger import StagingSteps
from stagegate.progress import Listed
from stagegate.workers.lease import PROGRESS_EVERY

log = logging.getLogger(__name__)


class ListingRecorder:
    """A :data:`stagegate.progress.ListingCallback` writing the count at most every
    :data:`~workers.lease.PROGRESS_EVERY` seconds (and once the listing is done)."""

    def __init__(
        self, stagings: StagingSteps, job_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stagings, self._job_id, self._clock = stagings, job_id, clock
        self._last = float("-inf")

    def __call__(self, listing: Listed) -> None:
        now = self._clock()
        if now - self._last < PROGRESS_EVERY and not listing.done:
            return
        self._last = now
        try:
            self._stagings.record_listing(self._job_id, listing.objects, listing.bytes)
        except Exception as exc:  # progress is for show: a missed write must not fail the plan
            log.warning("could not record the listing progress of %s: %s", self._job_id, exc)
