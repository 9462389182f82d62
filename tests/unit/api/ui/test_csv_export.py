"""The CSV download is byte for byte the CLI export's CSV, however it is chunked."""

import io
from dataclasses import replace
from datetime import UTC, datetime

from stagegate.api.ui.csv_export import csv_chunks, csv_filename
from stagegate.ledger import AuditEvent
from stagegate.ledger.export import write_csv

BASE = AuditEvent(
    seq=1, time=datetime(2026, 11, 1, tzinfo=UTC), actor="sam", role="scientist", action="stage.requested",
    job_id="j", job_ref=None, source='s3://d/"quoted",\nnew line/', destination="nodes:gpu-01", bytes=5,
    files=1, manifest_digest=None, policy_version=None, decision=None, reasons=("a, b",), details={"k": [1]},
    prev_hash="0" * 64, hash="1" * 64,
)  # fmt: skip


def whole(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    write_csv(events, out)
    return out.getvalue()


def test_chunks_join_to_the_export() -> None:
    events = [replace(BASE, seq=i) for i in range(1, 8)]
    for chunk in (1, 2, 3, 7, 100):
        assert "".join(csv_chunks(events, chunk)) == whole(events)


def test_no_events_is_the_header() -> None:
    assert "".join(csv_chunks([])) == whole([])
    assert whole([]).startswith("seq,time,actor")


def test_filename_is_header_safe() -> None:
    name = csv_filename({"source": 's3://x/"; evil', "user": "sam"})
    assert name.endswith(".csv") and '"' not in name and ";" not in name and " " not in name
    assert name.startswith("stagegate-audit_source-s3---x")
