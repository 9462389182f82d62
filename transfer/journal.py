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

from transfer.objects import CopiedFile
from transfer.sink import open_nofollow, real_directory

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"


def read_records(path: Path) -> Iterator[CopiedFile]:
    """The records in ``path``. A damaged file (cut short by a crash, edited) ends the
    stream where the damage starts: what it no longer vouches for is simply copied again."""
    with os.fdopen(open_nofollow(path, os.O_RDONLY), "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                record = CopiedFile.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring %s from line %d on: damaged (%s)", path, number, exc)
                return
            yield record


def encode_records(records: Iterable[CopiedFile]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record.to_json(), separators=(",", ":")).encode() + b"\n"


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
        final = self.generation / f"{index:010d}.jsonl"
        temp = final.with_suffix(".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(open_nofollow(temp, flags), "wb") as f:
            f.writelines(encode_records(records))
            f.flush()
            os.fsync(f.fileno())
        temp.rename(final)

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
        merged = heapq.merge(*streams, key=lambda r: r.key)  # stable: newer streams come later
        for _, group in itertools.groupby(merged, key=lambda r: r.key):
            *_, newest = group
            yield newest

    def discard_earlier(self) -> None:
        for generation in self._previous:
            shutil.rmtree(generation, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
