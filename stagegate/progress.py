"""What a copy reports as it goes: immutable snapshots handed to a callback.

The engine makes them, the steps pass them on, and the client draws them; it lives here so
the client can name it without reaching into the engine.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    files_total: int
    bytes_total: int
    files_done: int = 0  # copied, or found already present and verified
    bytes_done: int = 0
    files_skipped: int = 0  # of files_done, those found already present
    bytes_skipped: int = 0


ProgressCallback = Callable[[Progress], None]


def throughput(bytes_moved: int, seconds: float) -> float:
    """Bytes per second over a whole transfer: the one definition of "rate" that a summary, its
    JSON and the last line of a progress bar all show (bytes found already in place are not
    moved, so they are not in ``bytes_moved``)."""
    return bytes_moved / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Listed:
    """How far planning has listed the source: objects (and their bytes) seen so far; ``done``
    once the listing is complete."""

    objects: int
    bytes: int
    done: bool = False


ListingCallback = Callable[[Listed], None]
