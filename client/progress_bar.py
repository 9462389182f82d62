"""A one-line progress bar on a terminal: bytes, rate, ETA, files."""

import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from stagegate.client.progress_line import Fields, layout
from stagegate.client.units import format_duration
from stagegate.progress import Listed, Progress
from stagegate.sizes import format_bytes

REDRAW_EVERY = 0.1  # seconds
RATE_WINDOW = 5.0  # seconds of history behind the rate and the ETA


class ProgressBar:
    """Called from copy threads with each new :class:`Progress`; redraws at most 10 times a
    second. The rate is over the last few seconds, so the ETA follows changes of pace."""

    def __init__(self, stream: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._last_draw = float("-inf")
        self._history: deque[tuple[float, int]] = deque()
        self._drawn = False
        self._width_drawn = 0
        self._last: tuple[Progress, str, float] | None = None

    def __call__(self, progress: Progress, note: str = "", rate: float | None = None) -> None:
        """Draw ``progress``; ``note`` is appended to the line, and ``rate`` (bytes per
        second), when given, replaces the bar's own estimate (the service measures its own)."""
        now = self._clock()
        if now - self._last_draw < REDRAW_EVERY and progress.files_done < progress.files_total:
            return
        with self._lock:
            self._last_draw = now
            self._draw(progress, now, note, rate)

    def listed(self, listing: Listed) -> None:
        """Planning: how many objects the listing has found so far, on the bar's line (a
        listing of millions takes a while, and a silent terminal looks hung)."""
        now = self._clock()
        if now - self._last_draw < REDRAW_EVERY and not listing.done:
            return
        with self._lock:
            self._last_draw = now
            verb = "listed" if listing.done else "listing the source:"
            line = f"{verb} {listing.objects} objects, {format_bytes(listing.bytes)}"
            width = shutil.get_terminal_size((80, 20)).columns - 1
            self._put(line if len(line) <= width else line[: line.rfind(" ", 0, width)])

    def _put(self, line: str) -> None:
        # Pad over what a longer earlier line left behind (the fields shown may change).
        self._stream.write("\r" + line.ljust(self._width_drawn))
        self._width_drawn = len(line)
        self._stream.flush()
        self._drawn = True

    def _rate(self, now: float, moved: int) -> float:
        self._history.append((now, moved))
        while len(self._history) > 2 and now - self._history[0][0] > RATE_WINDOW:
            self._history.popleft()
        t0, b0 = self._history[0]
        return (moved - b0) / (now - t0) if now > t0 else 0.0

    def _draw(self, p: Progress, now: float, note: str = "", given_rate: float | None = None) -> None:
        moved = p.bytes_done - p.bytes_skipped  # skipped files are not throughput
        rate = self._rate(now, moved)
        if given_rate is not None:
            rate = given_rate
        self._last = (p, note, rate)
        left = p.bytes_total - p.bytes_done
        eta = format_duration(left / rate) if rate > 0 and left > 0 else "--:--"
        fraction = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        fields = Fields(
            percent=f"{fraction:6.1%}",
            sizes=f"{format_bytes(p.bytes_done)} / {format_bytes(p.bytes_total)}",
            rate=f"{format_bytes(rate)}/s",
            eta=f"ETA {eta}",
            files=f"files {p.files_done}/{p.files_total}",
            note=note or None,
        )
        self._put(layout(fields, fraction, shutil.get_terminal_size((80, 20)).columns))

    def finish(self, rate: float | None = None) -> None:
        """End the bar's line so the summary starts on a fresh one. ``rate`` (bytes per second),
        when given, redraws the last line with it first: the summary's own rate, so the two
        never disagree (see :func:`stagegate.progress.throughput`)."""
        with self._lock:
            if self._drawn and rate is not None and self._last is not None and self._last[2] != rate:
                p, note, _ = self._last
                self._draw(p, self._clock(), note, rate)
            if self._drawn:
                self._stream.write("\n")
                self._stream.flush()
                self._drawn = False
