"""The directory each copying thread last reached, kept open for its next file.

Files are copied in key order, so a thread's next file is nearly always in the directory of
its last one; walking to it again by descriptor (an open and a close per path segment, never
following a link) was 7 of the 25 system calls a small file cost (strace of a 20,000-file
staging), and every system call is a GIL hand-off between the copy threads.
"""

import contextlib
import os
import threading
from collections.abc import Callable

Segments = tuple[str, ...]


class LastDirectories:
    """Per thread, the descriptor of the directory it last asked for, by its segments.

    A descriptor handed out is owned here: valid until the same thread asks for another
    directory, or until :meth:`close`. At most one descriptor per thread is held, so memory
    and open files stay bounded by the threads, not by the directories. The cache holds no
    reference to its owner (the opener comes with each call), so an owner that closes it from
    a finalizer is freed as soon as it is unused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Segments, int]] = {}  # thread ident -> (segments, fd)
        self._closed = False

    def get(self, segments: Segments, open_dir: Callable[[Segments], int]) -> int:
        """The directory ``segments``, opened with ``open_dir`` (by descriptor, no link
        followed) once for this thread's run of files in it."""
        ident = threading.get_ident()
        held = self._held.get(ident)  # only this thread replaces its own entry
        if held is not None and held[0] == segments:
            return held[1]
        fd = open_dir(segments)
        with self._lock:
            if self._closed:
                os.close(fd)
                raise ValueError("the directory cache is closed")
            self._held[ident] = (segments, fd)
        if held is not None:
            os.close(held[1])
        return fd

    def close(self) -> None:
        """Close every descriptor held; called once no thread uses them any more."""
        with self._lock:
            self._closed = True
            held, self._held = self._held, {}
        for _, fd in held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
