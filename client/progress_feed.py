"""Progress for a caller's callback: one snapshot at a time, never moving backwards.

The engine reports from its copy threads, each outside its lock, so two snapshots can arrive
in the other order, and a failed attempt's bytes are retracted before they are read again.
A bar shrugs that off; a training script's callback should not have to.
"""

import threading

from stagegate.progress import Progress, ProgressCallback


class OrderedProgress:
    """Passes each :class:`Progress` on to ``callback`` under a lock (so the callback need not
    be thread-safe), dropping any snapshot that is not ahead of the last one passed on (fewer files
    or fewer bytes done than it, or the same of both). The snapshot with everything done is
    ahead of every other, so it always comes through."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._last: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        with self._lock:
            last = self._last
            if last is not None and (
                progress.files_done < last.files_done
                or progress.bytes_done < last.bytes_done
                or (progress.files_done, progress.bytes_done) == (last.files_done, last.bytes_done)
            ):
                return
            self._last = progress
            self._callback(progress)


def ordered(callback: ProgressCallback | None) -> ProgressCallback | None:
    """``callback`` behind an :class:`OrderedProgress`, or None for none."""
    return None if callback is None else OrderedProgress(callback)
