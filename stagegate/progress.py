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
