"""Tests for the record files the steps use: records written and read back, a key-ordered
file read from a key on (by bisection), atomic replacement, and the newest-wins merge."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagegate.transfer.objects import CopiedFile, Verification
from stagegate.transfer.records import (
    encode_records,
    newest_per_key,
    read_records,
    read_records_from,
)


def record(key: str, tag: str = "") -> CopiedFile:
    return CopiedFile(key, len(key), f"rev-{key}", None, f"b3-{key}-{tag}", Verification.LOCAL, None, 7)


def write(path: Path, records: list[CopiedFile]) -> Path:
    path.write_bytes(b"".join(encode_records(records)))
    return path


def test_encode_and_read_roundtrip(tmp_path: Path) -> None:
    records = [
        record("a"),
        CopiedFile("caf\u00e9/b", 7, None, "v1", "x", Verification.SOURCE, "crc32:cbf43926", 9),
    ]
    path = write(tmp_path / "m.jsonl", records)
    assert list(read_records(path)) == records
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["verification"] == "source"


keys = st.text(st.sampled_from("ab/-.0\u00e9\U0001f600"), min_size=1, max_size=6)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.sets(keys, max_size=40), first=keys)
def test_read_from_is_the_suffix_from_first_key(tmp_path: Path, stored: set[str], first: str) -> None:
    records = [record(k) for k in sorted(stored)]
    path = write(tmp_path / "m.jsonl", records)
    assert list(read_records_from(path, first)) == [r for r in records if r.key >= first]


def test_read_from_examples(tmp_path: Path) -> None:
    records = [record(k) for k in ["a", "a-c", "a/b", "b", "z"]]
    path = write(tmp_path / "m.jsonl", records)
    assert [r.key for r in read_records_from(path, "")] == ["a", "a-c", "a/b", "b", "z"]
    assert [r.key for r in read_records_from(path, "a/")] == ["a/b", "b", "z"]
    assert [r.key for r in read_records_from(path, "b")] == ["b", "z"]
    assert list(read_records_from(path, "zz")) == []
    assert list(read_records_from(write(tmp_path / "empty.jsonl", []), "a")) == []


def test_read_from_stops_at_damage(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", [record(k) for k in "abcdef"])
    data = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(data[:4]) + b'{"key": "e", cut short\n' + data[5])
    assert [r.key for r in read_records_from(path, "b")] == ["b", "c", "d"]


def test_newest_per_key_prefers_later_streams() -> None:
    old = [record("a", "old"), record("c", "old")]
    new = [record("b", "new"), record("c", "new")]
    merged = list(newest_per_key([iter(old), iter(new)]))
    assert merged == [record("a", "old"), record("b", "new"), record("c", "new")]
    assert list(newest_per_key([])) == []


@pytest.mark.parametrize("count", [1, 2, 1000])
def test_read_from_finds_every_start_in_a_long_file(tmp_path: Path, count: int) -> None:
    records = [record(f"k{i:05d}") for i in range(count)]
    path = write(tmp_path / "m.jsonl", records)
    for i in {0, count // 3, count - 1}:
        assert next(read_records_from(path, records[i].key)) == records[i]
