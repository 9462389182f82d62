"""Progress leaves the engine only through a callback receiving immutable snapshots."""

import threading

from stagegate.progress import Progress, ProgressCallback

__all__ = ["Progress", "ProgressCallback", "ProgressTracker"]


class ProgressTracker:
    """Thread-safe counters behind the callback. A snapshot is made only when someone looks
    (the callback, or :attr:`state`): the counters move several times a file."""

    def __init__(self, files_total: int, bytes_total: int, callback: ProgressCallback | None) -> None:
        self._lock = threading.Lock()
        self._totals = (files_total, bytes_total)
        self._done = [0, 0, 0, 0]  # files, bytes, files skipped, bytes skipped
        self._callback = callback

    def _snapshot(self) -> Progress:
        files, size, files_skipped, bytes_skipped = self._done
        return Progress(*self._totals, files, size, files_skipped, bytes_skipped)

    def _advance(self, files: int = 0, size: int = 0, skipped: bool = False) -> None:
        with self._lock:
            done = self._done
            done[0] += files
            done[1] += size
            if skipped:
                done[2] += files
                done[3] += size
            if self._callback is None:
                return
            snapshot = self._snapshot()
        self._callback(snapshot)

    def bytes_moved(self, n: int) -> None:
        self._advance(size=n)

    def bytes_retracted(self, n: int) -> None:
        """A failed attempt's bytes no longer count: they will be read again."""
        self._advance(size=-n)

    def file_done(self) -> None:
        self._advance(files=1)

    def file_skipped(self, size: int) -> None:
        self._advance(files=1, size=size, skipped=True)

    @property
    def state(self) -> Progress:
        with self._lock:
            return self._snapshot()
