import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stagegate.errors import InvalidInputError
from stagegate.ledger.chain import GENESIS_HASH, canonical_json, event_hash, format_time, parse_time
from stagegate.ledger.events import AuditEvent, NewEvent
from stagegate.ledger.verify import ALTERED, BROKEN_LINK, HEAD_MISMATCH, MISSING, ChainChecker


def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"], "c": {"z": 0, "y": 1.5}}) == (
        '{"a":[true,null,"é"],"b":1,"c":{"y":1.5,"z":0}}'
    )
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


def test_times_are_utc_with_microseconds() -> None:
    moment = datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2024-03-01T10:00:00.000005Z"
    assert parse_time("2024-03-01T10:00:00.000005Z") == moment
    with pytest.raises(ValueError):
        format_time(datetime(2024, 1, 1))


def _chain(length: int) -> list[AuditEvent]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, length + 1):
        event = AuditEvent(
            seq=seq, time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seq), actor="alice",
            role="operator", action="stage", job_id=None, job_ref=None, source="s3://b/p",
            destination="/nvme/p", bytes=seq, files=1, manifest_digest=None, policy_version=None,
            decision=None, reasons=(), details={}, prev_hash=prev, hash="",
        )  # fmt: skip
        event = replace(event, hash=event_hash(prev, event.hashed_fields()))
        events.append(event)
        prev = event.hash
    return events


def test_hash_is_stable() -> None:
    # A fixed vector: changing the canonical form or the hash input breaks every stored chain.
    # Spelled out so an outside verifier can see exactly what is hashed.
    first = _chain(1)[0]
    canonical = (
        '{"action":"stage","actor":"alice","bytes":1,"decision":null,"destination":"/nvme/p",'
        '"details":{},"files":1,"job_id":null,"job_ref":null,"manifest_digest":null,'
        '"policy_version":null,"prev_hash":"' + "0" * 64 + '","reasons":[],"role":"operator",'
        '"seq":1,"source":"s3://b/p","time":"2024-01-01T00:00:01.000000Z"}'
    )
    assert canonical_json(first.hashed_fields()) == canonical
    assert first.hash == hashlib.sha256(("0" * 64 + canonical).encode()).hexdigest()
    assert first.hash == "f74e6bb1bf0ed6c53a9c6c07f60eaae6014f8067491e85ed267c41453634a993"


def _verdict(
    events: list[AuditEvent], anchor: tuple[int, str] | None = None
) -> tuple[bool, int | None, str | None]:
    checker = ChainChecker(anchor)
    for event in events:
        verdict = checker.check(event)
        if verdict is not None:
            return verdict.intact, verdict.first_bad_seq, verdict.problem
    verdict = checker.finish()
    return verdict.intact, verdict.first_bad_seq, verdict.problem


def test_checker_accepts_a_good_chain() -> None:
    assert _verdict(_chain(6)) == (True, None, None)
    assert _verdict([]) == (True, None, None)


def test_checker_names_the_problem() -> None:
    events = _chain(6)
    altered = [*events[:2], replace(events[2], bytes=0), *events[3:]]
    assert _verdict(altered) == (False, 3, ALTERED)
    assert _verdict(events[:2] + events[4:]) == (False, 3, MISSING)
    assert _verdict(events[1:]) == (False, 1, MISSING)
    forged = replace(events[2], prev_hash="f" * 64)
    forged = replace(forged, hash=event_hash(forged.prev_hash, forged.hashed_fields()))
    assert _verdict([*events[:2], forged, *events[3:]]) == (False, 3, BROKEN_LINK)
    anchor = (6, events[-1].hash)
    assert _verdict(events[:4], anchor) == (False, 5, MISSING)
    assert _verdict(events, (4, "0" * 64)) == (False, 4, HEAD_MISMATCH)
    assert _verdict(events, (4, events[3].hash)) == (True, None, None)


def test_new_event_validation() -> None:
    with pytest.raises(InvalidInputError):
        NewEvent(actor="", role="r", action="a")
    with pytest.raises(InvalidInputError):
        NewEvent(actor="a", role="r", action="a", decision="maybe")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        NewEvent(actor="a", role="r", action="a", bytes=-1)
    with pytest.raises(InvalidInputError):
        NewEvent(actor="a", role="r", action="a", reasons="deny")  # type: ignore[arg-type]
