"""Tests for transfer.journal.Journal on a real temporary directory."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagegate.transfer.journal import JOURNAL_DIR, Journal, encode_records, read_records
from stagegate.transfer.objects import CopiedFile, Verification


def record(key: str, tag: str = "", size: int = 1) -> CopiedFile:
    return CopiedFile(
        key=key,
        size=size,
        revision=f"rev-{key}",
        version=None,
        blake3=f"b3-{key}-{tag}",
        verification=Verification.LOCAL,
        source_checksum=None,
        mtime_ns=123,
    )


def write_manifest(path: Path, records: list[CopiedFile]) -> Path:
    path.write_bytes(b"".join(encode_records(records)))
    return path


def test_encode_and_read_roundtrip(tmp_path: Path) -> None:
    records = [
        record("a"),
        CopiedFile("caf\u00e9/b", 7, None, "v1", "x", Verification.SOURCE, "crc32:cbf43926", 9),
    ]
    path = write_manifest(tmp_path / "m.jsonl", records)
    assert list(read_records(path)) == records
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["verification"] == "source"


def test_record_batch_writes_sorted_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.record_batch(0, [record("c"), record("a"), record("b")])
    files = list(journal.generation.iterdir())
    assert [f.name for f in files] == ["0000000000.jsonl"]  # no temp file left behind
    assert [r.key for r in read_records(files[0])] == ["a", "b", "c"]


def test_current_reads_batches_in_index_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    # batches finish out of order; batch 10 must still come after batch 2
    journal.record_batch(10, [record("z"), record("y")])
    journal.record_batch(2, [record("m"), record("k")])
    journal.record_batch(0, [record("b"), record("a")])
    assert [r.key for r in journal.current()] == ["a", "b", "k", "m", "y", "z"]


def test_empty_batch_and_empty_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert list(journal.current()) == []
    assert list(journal.earlier(None)) == []
    journal.record_batch(0, [])
    assert list(journal.current()) == []


def test_second_journal_sees_the_first_generation_as_earlier(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.record_batch(0, [record("a", "1"), record("b", "1")])
    second = Journal(tmp_path)
    assert second.generation != first.generation
    assert list(second.current()) == []
    assert list(second.earlier(None)) == [record("a", "1"), record("b", "1")]
    # the first run does not see the second as earlier
    assert list(first.earlier(None)) == []


def test_earlier_merges_manifest_and_generations_newest_wins(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "manifest.jsonl", [record("a", "m"), record("c", "m"), record("e", "m")]
    )
    run1 = Journal(tmp_path)
    run1.record_batch(0, [record("b", "1"), record("c", "1")])
    run1.record_batch(1, [record("d", "1")])
    run2 = Journal(tmp_path)
    run2.record_batch(0, [record("c", "2"), record("d", "2")])
    run3 = Journal(tmp_path)
    merged = list(run3.earlier(manifest))
    assert merged == [
        record("a", "m"),
        record("b", "1"),
        record("c", "2"),
        record("d", "2"),
        record("e", "m"),
    ]


def test_missing_manifest_is_ignored(tmp_path: Path) -> None:
    run1 = Journal(tmp_path)
    run1.record_batch(0, [record("a")])
    assert list(Journal(tmp_path).earlier(tmp_path / "no-such-manifest.jsonl")) == [record("a")]


def test_discard_earlier_and_remove(tmp_path: Path) -> None:
    run1 = Journal(tmp_path)
    run1.record_batch(0, [record("a")])
    run2 = Journal(tmp_path)
    run2.record_batch(0, [record("b")])
    run2.discard_earlier()
    assert not run1.generation.exists()
    assert list(run2.current()) == [record("b")]
    assert list(Journal(tmp_path).earlier(None)) == [record("b")]
    run2.remove()
    assert not (tmp_path / JOURNAL_DIR).exists()


keys = st.text(st.sampled_from("ab/-.0\u00e9"), min_size=1, max_size=4)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    manifest_keys=st.sets(keys, max_size=10),
    runs=st.lists(st.lists(st.sets(keys, max_size=6), max_size=3), max_size=3),
)
def test_earlier_is_a_newest_wins_union(
    tmp_path_factory: pytest.TempPathFactory,
    manifest_keys: set[str],
    runs: list[list[set[str]]],
) -> None:
    state = tmp_path_factory.mktemp("state")
    expected: dict[str, CopiedFile] = {}
    manifest_records = [record(k, "m") for k in sorted(manifest_keys)]
    manifest = write_manifest(state / "manifest.jsonl", manifest_records)
    expected.update((r.key, r) for r in manifest_records)
    for run_index, batch_key_sets in enumerate(runs):
        journal = Journal(state)
        # batches of one run cover consecutive key ranges, as the engine writes them
        run_keys = sorted(set().union(*batch_key_sets))
        sizes = [len(s) for s in batch_key_sets]
        start = 0
        for batch_index, size in enumerate(sizes):
            batch = [record(k, f"r{run_index}") for k in run_keys[start : start + size]]
            start += size
            journal.record_batch(batch_index, list(reversed(batch)))
            expected.update((r.key, r) for r in batch)
    merged = list(Journal(state).earlier(manifest))
    assert merged == [expected[k] for k in sorted(expected)]
