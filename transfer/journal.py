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
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from transfer.objects import CopiedFile

JOURNAL_DIR = "journal"


def read_records(path: Path) -> Iterator[CopiedFile]:
    with path.open("rb") as f:
        for line in f:
            yield CopiedFile.from_json(json.loads(line))


def encode_records(records: Iterable[CopiedFile]) -> Iterator[bytes]:
    for record in records:
        yield json.dumps(record.to_json(), separators=(",", ":")).encode() + b"\n"


class Journal:
    """Journal generations under ``state_dir/journal``."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / JOURNAL_DIR
        self._dir.mkdir(exist_ok=True)
        self._previous = sorted(p for p in self._dir.iterdir() if p.is_dir())
        self.generation = self._dir / f"{time.time_ns():020d}"
        self.generation.mkdir()

    def record_batch(self, index: int, records: list[CopiedFile]) -> None:
        """Durably add a finished batch to this run's generation."""
        records = sorted(records, key=lambda r: r.key)
        final = self.generation / f"{index:010d}.jsonl"
        temp = final.with_suffix(".tmp")
        with temp.open("wb") as f:
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
        if manifest is not None and manifest.exists():
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
