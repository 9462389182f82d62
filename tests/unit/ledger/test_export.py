import csv
import io
import json
from datetime import UTC, datetime

import pytest

from stagegate.errors import InvalidInputError
from stagegate.ledger.events import AuditEvent
from stagegate.ledger.export import CSV_COLUMNS, write_events

EVENT = AuditEvent(
    seq=1, time=datetime(2024, 1, 1, tzinfo=UTC), actor="alice", role="operator", action="egress",
    job_id="j", job_ref=None, source="/nvme/ckpt", destination="s3://out/ckpt", bytes=5, files=1,
    manifest_digest=None, policy_version="v1", decision="deny", reasons=("label secret",),
    details={"node": "gpu-1", "ünï": "cödé"}, prev_hash="0" * 64, hash="a" * 64,
)  # fmt: skip


def test_jsonl_is_one_canonical_object_per_line() -> None:
    out = io.StringIO()
    assert write_events("jsonl", [EVENT, EVENT], out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == EVENT.to_json()
    assert '"ünï":"cödé"' in lines[0]


def test_csv_has_every_column() -> None:
    out = io.StringIO()
    assert write_events("csv", [EVENT], out) == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert tuple(row) == CSV_COLUMNS
    assert row["job_ref"] == "" and row["decision"] == "deny" and row["time"] == "2024-01-01T00:00:00.000000Z"
    assert json.loads(row["reasons"]) == ["label secret"]
    assert json.loads(row["details"]) == {"node": "gpu-1", "ünï": "cödé"}


def test_unknown_format() -> None:
    with pytest.raises(InvalidInputError):
        write_events("xml", [], io.StringIO())  # type: ignore[arg-type]
