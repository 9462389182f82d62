"""The submissions waiting for their stagings' decisions, watched together.

``POST /v1/stagings`` holds the request until the policy decided (and, for cached data, until
the nodes checked their copies), for up to ``STAGEGATE_DECISION_WAIT``. A burst of submissions
(a job array starting) would otherwise each read its own staging every poll interval: 50 in
flight, 250 view reads a second, each one a pool thread and a handful of statements, competing
with the submissions themselves for the threadpool and the database. Here one loop reads every
waiting staging in one read per interval (``StagingViews.views``) and wakes the requests whose
staging is decided; it runs only while someone waits.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool

from stagegate.ledger import Staging
from stagegate.states import StagingState

log = logging.getLogger(__name__)

# While a staging is in one of these states the policy has not decided yet.
DECIDING = (StagingState.PENDING, StagingState.PLANNING)
POLL_INTERVAL_S = 0.2


def still_deciding(staging: Staging) -> bool:
    """Not decided yet, or every node a cache hit its worker is still checking: ready in a
    moment, so worth waiting for (a staging of cached data answers ready, not transferring)."""
    if staging.state in DECIDING:
        return True
    return staging.state == StagingState.TRANSFERRING and all(n.cache_hit for n in staging.nodes)


class DecisionWaits:
    """The waiting submissions of one app, and the one loop that watches them."""

    def __init__(self, read: Callable[[Sequence[str]], list[Staging]], interval: float = POLL_INTERVAL_S):
        self._read = read  # the views of these stagings, in one read (blocking: run in the pool)
        self._interval = interval
        self._waiting: dict[str, list[asyncio.Future[Staging]]] = {}
        self._latest: dict[str, Staging] = {}  # each waiting staging as last read
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False  # set at shutdown: the loop ends after its read in flight

    async def decision(self, staging: Staging, wait: float) -> Staging:
        """``staging`` once it is decided, or as last seen when ``wait`` seconds pass."""
        if wait <= 0 or not still_deciding(staging):
            return staging
        future: asyncio.Future[Staging] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(staging.id, []).append(future)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch())
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return future.result() if future.done() else self._latest.get(staging.id, staging)
        finally:
            waiters = self._waiting.get(staging.id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(staging.id, None)
                self._latest.pop(staging.id, None)

    async def close(self) -> None:
        """Stop watching, at the app's shutdown: the loop's read in flight finishes first (a pool
        thread is not interrupted), so no read reopens the ledger after it is closed."""
        # Not cancelled: a cancel lands at the await and abandons the pool thread mid-read,
        # which then holds its connection open after the ledger closed. The loop sees the flag
        # within one interval instead.
        self._closing = True
        if self._watcher is not None:
            await self._watcher

    async def _watch(self) -> None:
        while self._waiting and not self._closing:
            await asyncio.sleep(self._interval)
            ids = list(self._waiting)
            if not ids or self._closing:
                break
            try:
                seen = await run_in_threadpool(self._read, ids)
            except Exception as exc:  # a database hiccup: the waiters keep waiting, their deadline holds
                log.warning("reading the stagings waited for failed: %s", exc)
                continue
            for staging in seen:
                if still_deciding(staging):
                    if staging.id in self._waiting:
                        self._latest[staging.id] = staging
                    continue
                for future in self._waiting.pop(staging.id, []):
                    if not future.done():
                        future.set_result(staging)
