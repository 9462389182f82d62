"""The durable record of one copy batch, ``batches/<index>.jsonl`` in the dataset's state
directory: the one record a staging resumes from, embedded or on the service.

One JSON object a line::

    {"batch": 3, "format": 2}                      the header, written when the batch begins
    {"key": "a/0.bin", "blake3": "...", ...}       a verified file (a manifest line), appended
    {"batch": 3, "complete": {"files": 2, ...}}    the last line, once every file is recorded

File lines are appended in groups, each only once the group's bytes and renames are durable
(one filesystem sync for the group), so a line never vouches for what a crash could take
back. A record without its last line is an interrupted batch: a rerun keeps the files it
names (if untouched) and copies the rest. A damaged line (a write cut short by a crash)
ends what the record vouches for. A record in another format (an older stagegate's, whose
first line held the counts) vouches for nothing: its files are checked and copied again.
"""

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stagegate.atomic_files import write_atomically
from stagegate.transfer.objects import CopiedFile
from stagegate.transfer.records import encode_records
from stagegate.transfer.sink import open_nofollow

log = logging.getLogger(__name__)

BATCHES_DIR = "batches"
FORMAT = 2


def record_name(index: int) -> str:
    return f"{index:010d}.jsonl"


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """What the run that completed a batch did: its files and bytes, how many of them it
    found already present and verified, and how long it took."""

    files: int
    bytes: int
    files_skipped: int
    bytes_skipped: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "files_skipped": self.files_skipped,
            "bytes_skipped": self.bytes_skipped,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch record as read back: its files' records in key order (the newest line per
    key), and the counts if the batch was completed."""

    index: int
    records: list[CopiedFile]
    counts: BatchCounts | None  # None: interrupted, ``records`` are the files done so far


def _line(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def read_batch_record(path: Path, index: int) -> BatchRecord | None:
    """The record at ``path``, whole or interrupted; None if there is none, or it is not a
    record of batch ``index`` in this format (then nothing it says is trusted)."""
    try:
        with os.fdopen(open_nofollow(path, os.O_RDONLY), "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("batch") != index:
            raise ValueError("not a batch record of this format and index")
    except (ValueError, IndexError) as exc:
        log.warning("ignoring the batch record %s: %s", path, exc)
        return None
    newest: dict[str, CopiedFile] = {}
    counts: BatchCounts | None = None
    for number, line in enumerate(lines[1:], 2):
        try:
            fields = json.loads(line.decode())  # a str: no encoding detection per line
            if "complete" in fields:
                if fields.get("batch") != index or number != len(lines):
                    raise ValueError("a last line that is not last, or not this batch's")
                done = fields["complete"]
                counts = BatchCounts(
                    int(done["files"]),
                    int(done["bytes"]),
                    int(done["files_skipped"]),
                    int(done["bytes_skipped"]),
                    float(done["seconds"]),
                )
                continue
            record = CopiedFile.from_json(fields)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring %s from line %d on: damaged (%s)", path, number, exc)
            break
        newest[record.key] = record
    records = [newest[key] for key in sorted(newest)]
    if counts is not None and (counts.files, counts.bytes) != (len(records), sum(r.size for r in records)):
        log.warning("batch record %s: its counts do not match its lines; taken as interrupted", path)
        counts = None
    return BatchRecord(index, records, counts)


class BatchRecordWriter:
    """The one writer of a batch's record. Beginning replaces any earlier record of the batch
    with its header and the records carried over (files an earlier run left, still intact);
    the caller appends a group only once the group's files are durable."""

    def __init__(self, path: Path, index: int, carried: Iterable[CopiedFile]) -> None:
        self._index = index
        header = _line({"batch": index, "format": FORMAT})
        write_atomically(path, [header, *encode_records(carried)])
        self._fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND)

    def append(self, records: Sequence[CopiedFile]) -> None:
        """Durably add ``records`` (of files already durable in the dataset)."""
        if records:
            self._write(b"".join(encode_records(records)))

    def complete(self, counts: BatchCounts) -> None:
        """The last line: every file of the batch is recorded."""
        self._write(_line({"batch": self._index, "complete": counts.to_json()}))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # one append a group: a crash cuts at most its last line short
            view = view[os.write(self._fd, view) :]
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
