"""Files of copied-file records, one JSON object a line: the manifest, and the lines of a
batch record (:mod:`transfer.batch_record`).

A manifest is in key order, so one batch's slice of it is found by bisection and merged with
newer records as a sorted stream: memory stays bounded by one batch, however many millions of
files the dataset has. A damaged line (cut short by a crash, edited) ends what the file
vouches for: the files after it are simply copied again.
"""

import heapq
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from stagegate.transfer.objects import CopiedFile
from stagegate.transfer.sink import open_nofollow

log = logging.getLogger(__name__)


def read_records(path: Path) -> Iterator[CopiedFile]:
    """The records in ``path``. A damaged file (cut short by a crash, edited) ends the
    stream where the damage starts: what it no longer vouches for is simply copied again."""
    with os.fdopen(open_nofollow(path, os.O_RDONLY), "rb") as f:
        yield from _records(f, path)


def read_records_from(path: Path, first_key: str) -> Iterator[CopiedFile]:
    """The records of the key-ordered file ``path`` from the first whose key is at least
    ``first_key``. The start is found by bisecting byte offsets: one batch's slice of a
    manifest of millions of lines costs a few dozen reads, not a pass over the whole file."""
    with os.fdopen(open_nofollow(path, os.O_RDONLY), "rb") as f:

        def line_start(offset: int) -> int:  # where the first line at or after ``offset`` starts
            if offset == 0:
                return 0
            f.seek(offset - 1)
            f.readline()
            return f.tell()

        def before_first(offset: int) -> bool:
            f.seek(line_start(offset))
            try:
                return str(json.loads(f.readline())["key"]) < first_key
            except (ValueError, KeyError, TypeError):
                return False  # the end, or damage: reading stops there anyway

        low, high = 0, os.fstat(f.fileno()).st_size
        while low < high:
            middle = (low + high) // 2
            if before_first(middle):
                low = middle + 1
            else:
                high = middle
        f.seek(line_start(low))
        yield from _records(f, path)


def _records(lines: Iterable[bytes], path: Path) -> Iterator[CopiedFile]:
    for number, line in enumerate(lines, 1):
        try:
            record = CopiedFile.from_json(json.loads(line.decode()))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring %s from line %d on: damaged (%s)", path, number, exc)
            return
        yield record


def encode_records(records: Iterable[CopiedFile]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record.to_json(), separators=(",", ":")).encode() + b"\n"


def newest_per_key(streams: list[Iterator[CopiedFile]]) -> Iterator[CopiedFile]:
    """Merge key-ordered ``streams`` (oldest first) into one, in key order; where several
    hold a key, the newest stream's record wins."""
    merged = heapq.merge(*streams, key=lambda r: r.key)  # stable: newer streams come later
    for _, group in itertools.groupby(merged, key=lambda r: r.key):
        *_, newest = group
        yield newest
