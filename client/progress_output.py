"""Where a transfer's progress goes: a bar on stderr, or JSON lines on stdout (``--json
--progress``), chosen once per command.

The JSON lines (one object a line, ``event`` says which):

- ``{"event": "listing", "objects": N, "bytes": B, "done": false}``: planning, objects listed so far;
- ``{"event": "progress", "files_done", "files_total", "bytes_done", "bytes_total",
  "files_skipped", "bytes_skipped", "rate_bytes_per_s"}``: the copy, at most every 0.5 s and
  once when the last file is done, that one with the summary's rate when there is a summary;
- ``{"event": "summary", ...}``: the command's summary, always the last line on success;
- ``{"event": "error", "error": "...", "exit_code": N}``: instead of the summary when it failed
  (the human message goes to stderr as well).
"""

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from stagegate.client.progress_bar import ProgressBar
from stagegate.progress import Listed, Progress

JSON_EVERY = 0.5  # seconds between two progress lines


class ProgressOutput(Protocol):
    """What a command hands its transfer: called with each snapshot, told of the listing,
    and finished (with the summary's rate, so the last report agrees with it)."""

    def __call__(self, progress: Progress, note: str = "", rate: float | None = None) -> None: ...
    def listed(self, listing: Listed) -> None: ...
    def finish(self, rate: float | None = None) -> None: ...


class JsonLinesProgress:
    """Progress as JSON lines on ``stream`` (stdout), rate-limited; the last snapshot is
    always written, by :meth:`finish`, so that it can carry the summary's rate."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._last_write = float("-inf")
        self._final: dict[str, object] | None = None  # the last snapshot, held for finish()
        # The rate's origin is the command's start, as the summary's is (planning included).
        self._started = clock()

    def _write(self, event: dict[str, object]) -> None:
        stream = self._stream or sys.stdout  # looked up late: click's test runner swaps it
        stream.write(json.dumps(event) + "\n")
        stream.flush()

    def __call__(self, progress: Progress, note: str = "", rate: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            last = progress.files_done >= progress.files_total
            if now - self._last_write < JSON_EVERY and not last:
                return
            if rate is None:  # the average so far: the definition the summary uses
                elapsed = now - self._started
                moved = progress.bytes_done - progress.bytes_skipped
                rate = moved / elapsed if elapsed > 0 else None
            event: dict[str, object] = {
                "event": "progress",
                "files_done": progress.files_done,
                "files_total": progress.files_total,
                "bytes_done": progress.bytes_done,
                "bytes_total": progress.bytes_total,
                "files_skipped": progress.files_skipped,
                "bytes_skipped": progress.bytes_skipped,
                "rate_bytes_per_s": None if rate is None else round(rate),
            }
            if note:
                event["note"] = note
            if last:  # written by finish(), with the summary's rate if it has one
                self._final = event
                return
            self._final = None  # a later snapshot supersedes it (a service's totals can grow)
            self._last_write = now
            self._write(event)

    def listed(self, listing: Listed) -> None:
        with self._lock:
            self._write(
                {"event": "listing", "objects": listing.objects, "bytes": listing.bytes, "done": listing.done}
            )

    def finish(self, rate: float | None = None) -> None:
        """Write the last snapshot held back, with ``rate`` (the summary's, bytes per second)
        when given, so the last progress line and the summary never disagree (see
        :func:`stagegate.progress.throughput`): this line's rate counts from the command's
        start, the summary's over the transfer's own time."""
        with self._lock:
            final, self._final = self._final, None
            if final is None:
                return
            if rate is not None:
                final["rate_bytes_per_s"] = round(rate)
            self._write(final)


def choose_output(as_json: bool, progress: bool | None, quiet: bool) -> ProgressOutput | None:
    """The progress output of a command: none when quiet; JSON lines on stdout with ``--json``
    only when ``--progress`` is asked for (``--json`` alone prints the summary alone, one line);
    else a bar on stderr when ``--progress`` or stderr is a terminal."""
    if quiet:
        return None
    if as_json:
        return JsonLinesProgress() if progress else None
    show = sys.stderr.isatty() if progress is None else progress
    return ProgressBar(stream=sys.stderr) if show else None  # looked up now: tests swap it


def summary_line(summary: dict[str, object]) -> str:
    """The ``--json`` summary as its JSON line (``"event": "summary"`` first)."""
    return json.dumps({"event": "summary", **summary})
