"""The audit trail on each backend: append, head, verify, query and export."""

import csv
import io
import json
from collections.abc import Iterable
from datetime import timedelta

import pytest

from stagegate.errors import InvalidInputError
from stagegate.ledger import AuditEvent, AuditTrail, Ledger, NewEvent
from stagegate.ledger.chain import GENESIS_HASH, event_hash


def _event(**overrides: object) -> NewEvent:
    fields: dict[str, object] = {"actor": "alice", "role": "operator", "action": "stage"}
    fields.update(overrides)
    return NewEvent(**fields)  # type: ignore[arg-type]


def test_empty_trail_is_intact_and_has_no_head(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    assert trail.head() is None
    verdict = trail.verify()
    assert verdict.intact and verdict.checked == 0
    assert trail.query() == []


def test_appends_form_a_chain_from_genesis(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    first = trail.append(_event(bytes=10, files=2, decision="allow", reasons=("fits policy",)))
    second = trail.append(_event(action="egress", decision="deny", reasons=("label secret", "no grant")))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.hash == event_hash(GENESIS_HASH, first.hashed_fields())
    assert first.time.tzinfo is not None and second.time >= first.time
    assert trail.head() == (2, second.hash)
    assert trail.verify().intact and trail.verify().checked == 2


def test_stored_events_read_back_exactly_as_appended(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    appended = trail.append(
        _event(
            job_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
            job_ref="train-42",
            source="s3://datasets/imagenet/",
            destination="/nvme/imagenet",
            bytes=1 << 40,
            files=1_281_167,
            manifest_digest="ab" * 32,
            policy_version="2024-06-01",
            decision="allow",
            reasons=("ok",),
            details={"node": "gpu-07", "ratio": 0.5, "nested": {"list": [1, "ü"]}, "none": None},
        )
    )
    (read,) = trail.query()
    assert read == appended
    assert read.details["nested"] == {"list": [1, "ü"]}


def test_credentials_never_reach_the_trail(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    trail.append(
        _event(
            source="https://user:hunter2@minio.local:9000/bucket/k?X-Amz-Signature=deadbeef&versionId=3",
            destination="s3://out/x?X-Amz-Credential=AKIAEXAMPLE%2F20240101&X-Amz-Security-Token=tok3n-value",
            details={"password": "hunter2", "aws_secret_access_key": "s3cr3t", "endpoint": "https://a:b@h/"},
        )
    )
    (event,) = trail.query()
    assert event.source == "https://minio.local:9000/bucket/k"  # nothing after a secret parameter
    assert event.destination == "s3://out/x"
    assert event.details == {
        "password": "[redacted]",
        "aws_secret_access_key": "[redacted]",
        "endpoint": "https://h/",
    }
    exported = io.StringIO()
    trail.export("jsonl", exported)
    for secret in ("hunter2", "deadbeef", "AKIAEXAMPLE", "s3cr3t", "tok3n-value"):
        assert secret not in exported.getvalue()


def test_details_must_be_plain_json(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    with pytest.raises(InvalidInputError):
        trail.append(_event(details={"when": object()}))
    with pytest.raises(InvalidInputError):
        trail.append(_event(details={"ratio": float("nan")}))
    assert trail.head() is None  # nothing half-written


def _fill(trail: AuditTrail) -> None:
    trail.append(_event(actor="alice", action="stage", job_id="job-a", job_ref="ref-a"))
    trail.append(_event(actor="bob", action="egress", job_id="job-b", job_ref="ref-b", decision="deny"))
    trail.append(_event(actor="alice", action="egress", job_id="job-a", job_ref="ref-a", decision="allow"))
    trail.append(_event(actor="carol", action="policy.update"))
    trail.append(_event(actor="alice", action="stage", job_id="job-c"))


def seqs(events: Iterable[AuditEvent]) -> list[int]:
    return [e.seq for e in events]


def test_query_filters(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    _fill(trail)
    assert seqs(trail.query()) == [1, 2, 3, 4, 5]
    assert seqs(trail.query(actor="alice")) == [1, 3, 5]
    assert seqs(trail.query(action="egress")) == [2, 3]
    assert seqs(trail.query(actor="alice", action="stage")) == [1, 5]
    assert seqs(trail.query(job="job-a")) == [1, 3]
    assert seqs(trail.query(job="ref-b")) == [2]
    assert seqs(trail.query(limit=2)) == [1, 2]
    assert seqs(trail.query(actor="alice", limit=2)) == [1, 3]
    assert trail.query(actor="nobody") == []
    everything = trail.query()
    assert seqs(trail.query(since=everything[2].time)) == [3, 4, 5]
    assert seqs(trail.query(until=everything[2].time)) == [1, 2]
    assert seqs(trail.query(since=everything[-1].time + timedelta(seconds=1))) == []
    # Streaming in pages smaller than the result gives the same answer.
    assert seqs(trail.events(actor="alice", page_size=1)) == [1, 3, 5]
    assert seqs(trail.events(page_size=2, limit=3)) == [1, 2, 3]


def test_query_refuses_naive_times(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    _fill(trail)
    naive = trail.query()[0].time.replace(tzinfo=None)
    with pytest.raises(InvalidInputError):
        trail.query(since=naive)


def test_jsonl_export_lines_can_be_verified_on_their_own(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    _fill(trail)
    out = io.StringIO()
    assert trail.export("jsonl", out) == 5
    previous = GENESIS_HASH
    for line in out.getvalue().splitlines():
        record = json.loads(line)
        digest = record.pop("hash")
        assert record["prev_hash"] == previous
        assert event_hash(previous, record) == digest
        previous = digest
    assert (5, previous) == trail.head()


def test_csv_export_with_filters(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    _fill(trail)
    out = io.StringIO()
    assert trail.export("csv", out, actor="alice") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["seq"] for r in rows] == ["1", "3", "5"]
    assert rows[0]["job_ref"] == "ref-a" and rows[0]["decision"] == ""
    assert json.loads(rows[1]["reasons"]) == []
    with pytest.raises(InvalidInputError):
        trail.export("xml", io.StringIO())  # type: ignore[arg-type]


def test_verify_streams_in_pages(ledger: Ledger) -> None:
    trail = AuditTrail(ledger)
    for i in range(25):
        trail.append(_event(bytes=i))
    for page_size in (1, 7, 25, 1000):
        verdict = trail.verify(page_size=page_size)
        assert verdict.intact and verdict.checked == 25
