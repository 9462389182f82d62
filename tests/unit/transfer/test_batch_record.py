"""Tests for the batch record (transfer.batch_record) on a real temporary directory: what the
one writer leaves at each point a kill can land, and what the reader makes of it."""

import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagegate.transfer.batch_record import BatchCounts, BatchRecordWriter, read_batch_record
from stagegate.transfer.objects import CopiedFile, Verification


def record(key: str, tag: str = "") -> CopiedFile:
    return CopiedFile(key, len(key), f"rev-{key}", None, f"b3-{key}-{tag}", Verification.LOCAL, None, 7)


def counts_of(records: list[CopiedFile], skipped: int = 0) -> BatchCounts:
    return BatchCounts(len(records), sum(r.size for r in records), skipped, 0, 0.5)


def test_a_complete_record_reads_back_in_key_order(tmp_path: Path) -> None:
    path = tmp_path / "0000000004.jsonl"
    writer = BatchRecordWriter(path, 4, [record("b")])
    writer.append([record("d"), record("a")])  # appended as files finish, in any order
    writer.append([])
    writer.append([record("c")])
    everything = [record(k) for k in "abcd"]
    writer.complete(counts_of(everything, skipped=1))
    writer.close()
    got = read_batch_record(path, 4)
    assert got is not None
    assert got.records == everything
    assert got.counts == counts_of(everything, skipped=1)


def test_without_its_last_line_it_is_interrupted_and_keeps_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "0000000000.jsonl"
    writer = BatchRecordWriter(path, 0, [])
    assert read_batch_record(path, 0) == read_batch_record(path, 0)
    header_only = read_batch_record(path, 0)
    assert header_only is not None and header_only.records == [] and header_only.counts is None
    writer.append([record("x"), record("y")])
    writer.close()
    got = read_batch_record(path, 0)
    assert got is not None and got.counts is None
    assert [r.key for r in got.records] == ["x", "y"]


def test_a_line_cut_short_ends_what_the_record_vouches_for(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "0000000001.jsonl"
    writer = BatchRecordWriter(path, 1, [record("a")])
    writer.append([record("b")])
    writer.close()
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"key":"c","size":1,"rev')  # a kill in the middle of an append
    with caplog.at_level(logging.WARNING):
        got = read_batch_record(path, 1)
    assert got is not None and [r.key for r in got.records] == ["a", "b"] and got.counts is None
    assert "damaged" in caplog.text
    # A last line after damage is not believed either.
    done = json.dumps({"batch": 1, "complete": counts_of([record("a"), record("b")]).to_json()})
    path.write_bytes(whole + b"garbage\n" + done.encode() + b"\n")
    got = read_batch_record(path, 1)
    assert got is not None and got.counts is None


def test_a_file_recorded_twice_counts_once_the_newest_wins(tmp_path: Path) -> None:
    path = tmp_path / "0000000002.jsonl"
    writer = BatchRecordWriter(path, 2, [record("a", "old")])
    writer.append([record("a", "new")])  # copied again: the file changed after start
    writer.complete(counts_of([record("a")]))
    writer.close()
    got = read_batch_record(path, 2)
    assert got is not None and got.records == [record("a", "new")] and got.counts is not None


def test_counts_that_do_not_match_the_lines_make_it_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "0000000003.jsonl"
    writer = BatchRecordWriter(path, 3, [record("a")])
    writer.complete(counts_of([record("a"), record("b")]))
    writer.close()
    got = read_batch_record(path, 3)
    assert got is not None and got.counts is None and [r.key for r in got.records] == ["a"]


def test_beginning_again_replaces_the_earlier_record(tmp_path: Path) -> None:
    path = tmp_path / "0000000000.jsonl"
    first = BatchRecordWriter(path, 0, [record("a"), record("b")])
    first.complete(counts_of([record("a"), record("b")]))
    first.close()
    second = BatchRecordWriter(path, 0, [record("b")])  # "a" was deleted on disk since
    second.close()
    got = read_batch_record(path, 0)
    assert got is not None and got.records == [record("b")] and got.counts is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json\n",
        b'{"batch": 0, "format": 2}\n'.replace(b"0,", b"9,"),  # another batch's
        # The service's record before the one format: counts first, then the records.
        b'{"batch":0,"files":1,"bytes":1,"files_skipped":0,"bytes_skipped":0,"seconds":0.1}\n'
        + json.dumps(record("a").to_json()).encode()
        + b"\n",
    ],
    ids=["empty", "garbage", "other-index", "older-format"],
)
def test_anything_else_vouches_for_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "0000000000.jsonl"
    path.write_bytes(content)
    assert read_batch_record(path, 0) is None


def test_no_record_is_none_and_a_symlink_is_refused(tmp_path: Path) -> None:
    assert read_batch_record(tmp_path / "0000000000.jsonl", 0) is None
    target = tmp_path / "elsewhere"
    target.write_bytes(b"x")
    (tmp_path / "0000000001.jsonl").symlink_to(target)
    with pytest.raises(Exception, match="symlink"):
        read_batch_record(tmp_path / "0000000001.jsonl", 1)


keys = st.text(st.sampled_from("ab/-.0\u00e9"), min_size=1, max_size=4)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    carried=st.sets(keys, max_size=6),
    groups=st.lists(st.lists(keys, max_size=5), max_size=4),
    cut=st.integers(min_value=0, max_value=400),
)
def test_a_record_cut_anywhere_vouches_for_a_prefix_of_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, carried: set[str], groups: list[list[str]], cut: int
) -> None:
    """Whatever byte a kill stops the writer at, the reader sees a prefix of the lines written,
    newest per key, never a file that was not appended, and never a complete batch early."""
    path = tmp_path_factory.mktemp("record") / "0000000000.jsonl"
    writer = BatchRecordWriter(path, 0, [record(k, "c") for k in sorted(carried)])
    for number, group in enumerate(groups):
        writer.append([record(k, str(number)) for k in group])
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    got = read_batch_record(path, 0)
    # A line counts once all its bytes are there (its newline may be what the kill took).
    whole, end = [], 0
    for line in data.splitlines():
        end += len(line)
        if end > cut:
            break
        whole.append(line)
        end += 1
    if not whole:
        assert got is None  # the header itself cut short: nothing vouched for
        return
    assert got is not None and got.counts is None
    expected: dict[str, CopiedFile] = {}
    for line in whole[1:]:
        r = CopiedFile.from_json(json.loads(line))
        expected[r.key] = r
    assert got.records == [expected[k] for k in sorted(expected)]
