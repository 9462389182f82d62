"""The journal of verified files, which makes a rerun resume instead of start over.

Each run writes one *generation* directory; each finished batch becomes one file in it,
written atomically, its records sorted by key. Batches cover consecutive key ranges, so a
generation read in batch order is in key order, and merging generations (and the previous
run's manifest) is a streaming merge: memory stays bounded by one batch, however many
millions of files the dataset has. A record is journaled only after its bytes are durable.
"""

import heapq
import itertools
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from stagegate.transfer.objects import CopiedFile
from stagegate.transfer.sink import open_nofollow, real_directory

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"


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
            record = CopiedFile.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring %s from line %d on: damaged (%s)", path, number, exc)
            return
        yield record


def encode_records(records: Iterable[CopiedFile]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record.to_json(), separators=(",", ":")).encode() + b"\n"


def write_atomically(final: Path, chunks: Iterable[bytes]) -> None:
    """Durably replace ``final`` with ``chunks``: written under a temporary name, fsynced,
    renamed, and the rename fsynced, so ``final`` is absent, the old file, or all of the new."""
    temp = final.with_suffix(".tmp")
    temp.unlink(missing_ok=True)  # a killed writer's; writers of one directory never overlap
    with os.fdopen(open_nofollow(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as f:
        f.writelines(chunks)
        f.flush()
        os.fsync(f.fileno())
    temp.rename(final)
    directory = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def newest_per_key(streams: list[Iterator[CopiedFile]]) -> Iterator[CopiedFile]:
    """Merge key-ordered ``streams`` (oldest first) into one, in key order; where several
    hold a key, the newest stream's record wins."""
    merged = heapq.merge(*streams, key=lambda r: r.key)  # stable: newer streams come later
    for _, group in itertools.groupby(merged, key=lambda r: r.key):
        *_, newest = group
        yield newest


class Journal:
    """Journal generations under ``state_dir/journal``."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = real_directory(state_dir / JOURNAL_DIR)
        # Only real directories are generations; a planted symlink is neither read nor removed.
        self._previous = sorted(p for p in self._dir.iterdir() if stat.S_ISDIR(p.lstat().st_mode))
        self.generation = self._dir / f"{time.time_ns():020d}"
        self.generation.mkdir()

    def record_batch(self, index: int, records: list[CopiedFile]) -> None:
        """Durably add a finished batch to this run's generation."""
        records = sorted(records, key=lambda r: r.key)
        write_atomically(self.generation / f"{index:010d}.jsonl", encode_records(records))

    def current(self) -> Iterator[CopiedFile]:
        """This run's records, in key order."""
        return self._generation_records(self.generation)

    @staticmethod
    def _generation_records(generation: Path) -> Iterator[CopiedFile]:
        for batch in sorted(generation.glob("*.jsonl")):
            yield from read_records(batch)

    def earlier(self, manifest: Path | None) -> Iterator[CopiedFile]:
        """Every record earlier runs left (the last manifest, then interrupted generations),
        in key order; where several hold a key, the newest wins."""
        streams: list[Iterator[CopiedFile]] = []
        if manifest is not None and manifest.is_file():
            streams.append(read_records(manifest))
        streams.extend(self._generation_records(g) for g in self._previous)
        return newest_per_key(streams)

    def discard_earlier(self) -> None:
        for generation in self._previous:
            shutil.rmtree(generation, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
