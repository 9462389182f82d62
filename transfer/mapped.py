"""A local file's bytes as views of its page cache, for hashing a file just written.

Reading a file back with ``pread`` copies every byte from the page cache into a buffer
before the hash reads it again; mapping the file lets the hash read the page cache itself.
Measured in a 2 x 512 MiB staging from S3 (perf, 2026-12-02): the ``preadv`` copy of the
hashing pass was 15 % of the process's CPU, about 0.7 s per GiB.
"""

import mmap
import os
from collections.abc import Iterator

from stagegate.transfer.errors import TransferError

MiB = 1 << 20
# per view: BLAKE3 spreads one update over the cores; a multiple of the mapping granularity
STEP = 8 * MiB
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux's


def file_views(fd: int, size: int, step: int = STEP, start: int = 0) -> Iterator[memoryview]:
    """Bytes ``start`` to ``size`` of ``fd``, ``step`` at a time (``start`` and ``step``
    multiples of :data:`mmap.ALLOCATIONGRANULARITY`), each view valid until the next is asked
    for. Raises :class:`TransferError` if the file holds fewer than ``size`` bytes (checked
    before mapping: a mapped page past the end would kill the process with SIGBUS)."""
    if step % mmap.ALLOCATIONGRANULARITY or start % mmap.ALLOCATIONGRANULARITY:
        raise ValueError(f"step {step} or start {start} is not a multiple of {mmap.ALLOCATIONGRANULARITY}")
    if size <= start:
        return
    held = os.fstat(fd).st_size
    if held < size:
        raise TransferError(f"temporary file shorter than written ({held} of {size})")
    for offset in range(start, size, step):
        length = min(step, size - offset)
        try:
            # One window at a time, so what the process maps (and its RSS) stays one window
            # however big the file; populated, its page tables are filled in one call rather
            # than a page fault per 64 KiB.
            flags = mmap.MAP_SHARED | _POPULATE
            window = mmap.mmap(fd, length, flags=flags, prot=mmap.PROT_READ, offset=offset)
        except OSError:  # a file system that cannot map files: copy through a buffer instead
            yield from _read_views(fd, size, step, offset)
            return
        with window:
            view = memoryview(window)
            try:
                yield view
            finally:
                view.release()  # the map cannot close while a view of it is out


def _read_views(fd: int, size: int, step: int, offset: int) -> Iterator[memoryview]:
    buffer = memoryview(bytearray(min(step, size - offset)))
    while offset < size:
        n = os.preadv(fd, [buffer[: min(len(buffer), size - offset)]], offset)
        if n == 0:
            raise TransferError(f"temporary file shorter than written ({offset} of {size})")
        yield buffer[:n]
        offset += n
