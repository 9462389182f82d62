"""Progress leaves the engine only through a callback receiving immutable snapshots."""

import threading
from dataclasses import replace

from stagegate.progress import Progress, ProgressCallback

__all__ = ["Progress", "ProgressCallback", "ProgressTracker"]


class ProgressTracker:
    """Thread-safe counters behind the callback."""

    def __init__(self, files_total: int, bytes_total: int, callback: ProgressCallback | None) -> None:
        self._lock = threading.Lock()
        self._state = Progress(files_total, bytes_total)
        self._callback = callback

    def _advance(self, files: int = 0, size: int = 0, skipped: bool = False) -> None:
        with self._lock:
            s = self._state
            s = replace(s, files_done=s.files_done + files, bytes_done=s.bytes_done + size)
            if skipped:
                s = replace(s, files_skipped=s.files_skipped + files, bytes_skipped=s.bytes_skipped + size)
            self._state = s
        if self._callback is not None:
            self._callback(s)

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
            return self._state
