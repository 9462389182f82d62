"""The page-cache state of a POSIX source: made the same for every tool, and measured."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CHUNK = 8 << 20


def warm(root: Path) -> None:
    """Read every file under `root`, so it starts a run in the page cache.

    Caches cannot be dropped here, and where proactive reclaim (DAMON) pages out idle
    memory, a tool's source would otherwise be hot or cold depending on what ran before it.
    Warming makes it hot for every tool alike.
    """
    buffer = bytearray(CHUNK)
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            with open(os.path.join(dirpath, filename), "rb", buffering=0) as source:
                while source.readinto(buffer):
                    pass


def cached_fraction(root: Path) -> float:
    """Share of the bytes under `root` resident in the page cache, as `fincore` reports it."""
    paths = [os.path.join(d, f) for d, _dirnames, files in os.walk(root) for f in files]
    resident = total = 0
    for start in range(0, len(paths), 1000):  # a batch of paths per call keeps argv short
        listing = subprocess.run(
            [
                "fincore",
                "--bytes",
                "--noheadings",
                "--raw",
                "--output",
                "RES,SIZE",
                *paths[start : start + 1000],
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in listing.splitlines():
            res, size = (int(field) for field in line.split())
            # fincore counts whole pages; a file's partial last page would push it past 100%.
            resident, total = resident + min(res, size), total + size
    return resident / total if total else 1.0
