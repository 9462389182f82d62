"""Start the kernel writing a file's dirty pages while the copy goes on, so the sync that
makes a batch durable (``syncfs``, or an ``fsync`` per file) finds most of them on disk
already instead of writing them all at once and stalling the copy at every batch end.

``sync_file_range(SYNC_FILE_RANGE_WRITE)`` only queues writeback: it promises nothing about
durability, which the later sync still provides. Python's ``os`` lacks it, so it is called
through libc; where libc or the filesystem has none (not Linux, ENOSYS, EINVAL on some
filesystems) this is a no-op and durability is exactly what it was without it.
"""

import ctypes
import errno
from collections.abc import Callable

WRITEBACK_WINDOW = 8 << 20  # ask once per 8 MiB written: a call per window, not per chunk
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>; WAIT_BEFORE/WAIT_AFTER would make the copy wait

# errnos that say the call will never work here (not the kernel's, nor this file's kind)
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP})

SyncFileRange = Callable[[int, int, int, int], int]


def libc_sync_file_range() -> SyncFileRange | None:
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


class Writeback:
    """Queues writeback of whole windows of a file as writes complete them. One instance
    serves every file; it switches itself off for good at the first sign the call is not
    supported, and never raises: a failure to start writeback early loses nothing."""

    def __init__(self, sync_file_range: SyncFileRange | None = None, window: int = WRITEBACK_WINDOW) -> None:
        self._call = sync_file_range
        self.window = window

    @classmethod
    def from_libc(cls) -> "Writeback":
        return cls(libc_sync_file_range())

    @property
    def enabled(self) -> bool:
        return self._call is not None

    def wrote(self, fd: int, offset: int, length: int) -> None:
        """``[offset, offset + length)`` of ``fd`` was just written: queue the windows it
        completed. Writes inside one window cost nothing; a small file never calls."""
        span = windows_completed(offset, length, self.window)
        if span is None or self._call is None:
            return
        start, size = span
        failed = self._call(fd, start, size, SYNC_FILE_RANGE_WRITE) != 0
        if failed and ctypes.get_errno() in _UNSUPPORTED:
            self._call = None


def windows_completed(offset: int, length: int, window: int) -> tuple[int, int] | None:
    """The whole ``window``-aligned windows a write of ``[offset, offset + length)`` ends or
    passes through, as ``(start, size)``; None if it stays inside one window. Stateless, so
    parallel parts written in place need no shared bookkeeping: a window two parts share is
    queued by whichever reaches its end (the rest is picked up by the final sync)."""
    end = offset + length
    last = end - end % window
    if length <= 0 or last <= offset - offset % window:
        return None
    first = offset - offset % window
    return first, last - first


WRITEBACK = Writeback.from_libc()
"""The process's writeback starter: libc's ``sync_file_range`` where there is one."""
