"""An optional bandwidth cap shared by every copying thread: a token bucket."""

import threading
import time
from collections.abc import Callable


class BandwidthLimiter:
    """Lets at most ``rate`` bytes per second through, with up to one second of burst."""

    def __init__(
        self,
        rate: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("bandwidth limit must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(rate)
        self._last = clock()

    def consume(self, n: int) -> None:
        """Block until ``n`` bytes may pass."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._rate), self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= n  # may go negative: the debt is paid by waiting below
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
