"""Writing audit events out for auditors: JSON Lines (hash-checkable line by line) or CSV."""

import csv
from collections.abc import Iterable
from typing import Literal, TextIO

from stagegate.errors import InvalidInputError
from stagegate.ledger.chain import canonical_json
from stagegate.ledger.events import AuditEvent

ExportFormat = Literal["jsonl", "csv"]
CSV_COLUMNS = (
    "seq", "time", "actor", "role", "action", "job_id", "job_ref", "source", "destination",
    "bytes", "files", "manifest_digest", "policy_version", "decision", "reasons", "details",
    "prev_hash", "hash",
)  # fmt: skip


def write_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """One canonical JSON object per line: the line minus "hash" is exactly what was hashed."""
    count = 0
    for event in events:
        out.write(canonical_json(event.to_json()) + "\n")
        count += 1
    return count


def write_csv(events: Iterable[AuditEvent], out: TextIO) -> int:
    """One row per event; reasons and details as canonical JSON text, nulls as empty cells."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for event in events:
        fields = event.to_json()
        writer.writerow(_cell(fields[column]) for column in CSV_COLUMNS)
        count += 1
    return count


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return canonical_json(value)
    return value


def write_events(fmt: ExportFormat, events: Iterable[AuditEvent], out: TextIO) -> int:
    if fmt == "jsonl":
        return write_jsonl(events, out)
    if fmt == "csv":
        return write_csv(events, out)
    raise InvalidInputError(f"export format must be 'jsonl' or 'csv', not {fmt!r}")
