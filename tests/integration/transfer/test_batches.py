"""The batch API the service's tasks use: a staging copied batch by batch, by separate calls
on fresh sources (as separate processes would), then published; every step repeatable."""

import dataclasses
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fsspec
import pytest

from integration.helpers import (
    MiB,
    assert_staged,
    blake3_hex,
    data_files,
    is_ready,
    payload,
    put_objects,
    read_manifest,
    small_config,
    snapshot,
    temp_files,
    write_tree,
)
from stagegate.atomic_files import temporary_name
from stagegate.transfer import (
    BatchResult,
    LabelChangedError,
    LabelFile,
    Plan,
    Progress,
    SourceObject,
    TransferConfig,
    copy_batch,
    open_source,
    plan_dataset,
    publish_batches,
    stage,
)
from stagegate.transfer.batch_record import read_batch_record
from stagegate.transfer.dataset_source import ready_selection
from stagegate.transfer.errors import TransferError
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.parts import batched_by_weight
from stagegate.transfer.sources.base import ObjectReader, PublishedChecksum, Source
from stagegate.transfer.staging_steps import batch_record_path

pytestmark = pytest.mark.integration

FILES = {
    "a/00.bin": payload("a0", 70_000),
    "a/01.bin": payload("a1", 1),
    "a/02.bin": b"",
    "a-c": payload("dash", 17),  # sorts between a/... and b/... only as bytes do
    "b/deep/er/x.bin": payload("deep", 123_457),
    "b/multi.bin": payload("multi", 3 * MiB + 5),  # read in ranged parts (threshold 2 MiB)
    "c.txt": b"see",
    **{f"d/{i:03d}.dat": payload(f"d{i}", 1000 + i) for i in range(12)},
    "z\u00e9": b"non-ascii sorts last",
}


class Interrupted(Exception):
    """Stands for a kill in the middle of a batch."""


class CountingSource:
    """A source that records every call reaching it; a batch must never list."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.url = inner.url
        self.prefers_ranged_reads = inner.prefers_ranged_reads
        self.calls: list[tuple[str, str]] = []

    def list(self) -> Iterator[SourceObject]:
        raise AssertionError("a batch listed the source")

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> ObjectReader:
        self.calls.append(("open", obj.key))
        return self.inner.open(obj, offset, length)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        self.calls.append(("published_checksum", obj.key))
        return self.inner.published_checksum(obj)

    def own_label(self, obj: SourceObject) -> str | None:
        self.calls.append(("own_label", obj.key))
        return self.inner.own_label(obj)

    def find(self, key: str) -> SourceObject | None:
        self.calls.append(("find", key))
        return self.inner.find(key)

    @property
    def opened(self) -> set[str]:
        return {key for call, key in self.calls if call == "open"}


def through_ledger(obj: SourceObject) -> SourceObject:
    """What a batch task gets: the object rebuilt from the columns the ledger stores."""
    return SourceObject(**json.loads(json.dumps(dataclasses.asdict(obj))))


def plan_batches(
    url: str, spill: Path, max_files: int = 4, label_file_name: str | None = None
) -> tuple[Plan, list[list[SourceObject]]]:
    """Plan as the service's plan step does, and cut the plan into contiguous batches."""
    plan = plan_dataset(open_source(url), spill, label_file_name)
    batches = batched_by_weight(plan.entries(), lambda o: o.size, 1 << 30, max_files)
    return plan, [[through_ledger(o) for o in batch] for batch in batches]


def run_batch(
    url: str,
    dest: Path,
    index: int,
    batch: Sequence[SourceObject],
    config: TransferConfig | None = None,
    **kw: Any,
) -> tuple[BatchResult, CountingSource]:
    """One batch task: a fresh source (as in a new process), never listed."""
    source = CountingSource(open_source(url))
    return copy_batch(source, dest, index, batch, config or small_config(), **kw), source


def publish(dest: Path, plan: Plan, batches: int, files: int | None = None) -> Any:
    return publish_batches(
        dest,
        source_url=plan.source_url,
        digest=plan.digest,
        batches=batches,
        files=plan.files if files is None else files,
        bytes=plan.bytes,
        selection=ready_selection(plan.source_url),
    )


def without_mtimes(manifest: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: {**record, "mtime_ns": 0} for key, record in manifest.items()}


@pytest.fixture
def s3_url(s3_client: Any, bucket: str) -> str:
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in FILES.items()})
    return f"s3://{bucket}/ds"


def test_batches_in_any_order_publish_the_dataset_in_key_order(s3_url, tmp_path):
    plan, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    assert len(batches) >= 5
    dest = tmp_path / "dest"
    order = list(range(len(batches)))
    random.Random(4).shuffle(order)
    assert order != sorted(order)
    results = {}
    for index in order:
        results[index], source = run_batch(s3_url, dest, index, batches[index])
        assert source.opened == {o.key for o in batches[index]}
        assert not is_ready(dest), "READY before publishing"
        assert batch_record_path(dest, index).is_file()
    for index, result in results.items():
        assert [r.key for r in result.records] == [o.key for o in batches[index]]
        assert result.files == result.files_copied == len(batches[index])
        assert result.files_skipped == 0
        assert result.bytes == sum(o.size for o in batches[index]) == result.bytes_copied
        assert not result.already_done

    published = publish(dest, plan, len(batches))

    manifest = assert_staged(dest, FILES)
    assert list(manifest) == sorted(FILES)
    assert not (state_dir_of(dest) / "batches").exists(), "batch records outlive publishing"
    assert (published.files, published.bytes, published.digest) == (plan.files, plan.bytes, plan.digest)
    assert (published.files_copied, published.files_skipped) == (len(FILES), 0)
    assert published.verified_source + published.verified_local == len(FILES)
    assert published.verified_source == len(FILES)  # single PUTs: every object has a CRC32

    # The same dataset as stage() makes in one process: records, READY's shape.
    embedded = tmp_path / "embedded"
    stage(open_source(s3_url), embedded, small_config())
    assert without_mtimes(read_manifest(embedded)) == without_mtimes(manifest)
    ready = json.loads((state_dir_of(dest) / "READY").read_bytes())
    assert ready.keys() == json.loads((state_dir_of(embedded) / "READY").read_bytes()).keys()
    assert ready["digest"] == plan.digest

    # Published again (a redelivered task): the same result, nothing rewritten.
    before = snapshot(dest)
    assert publish(dest, plan, len(batches)) == published
    assert snapshot(dest) == before


def test_a_completed_batch_reads_nothing_again(s3_client, bucket, s3_url, tmp_path):
    _, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    dest = tmp_path / "dest"
    first, _ = run_batch(s3_url, dest, 1, batches[1])
    before = snapshot(dest)

    again, source = run_batch(s3_url, dest, 1, batches[1])
    assert source.calls == []
    assert again.already_done
    assert dataclasses.replace(again, already_done=False) == first
    assert snapshot(dest) == before

    # The source may even be gone: the batch is done all the same.
    for obj in batches[1]:
        s3_client.delete_object(Bucket=bucket, Key=f"ds/{obj.key}")
    gone, source = run_batch(s3_url, dest, 1, batches[1])
    assert gone.already_done and source.calls == []
    assert gone.records == first.records


def test_a_batch_redone_copies_only_what_is_missing(s3_url, tmp_path):
    _, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    dest = tmp_path / "dest"
    batch = batches[0]
    run_batch(s3_url, dest, 0, batch)
    lost = batch[0].key
    (dest / lost).unlink()
    redone, source = run_batch(s3_url, dest, 0, batch)
    assert source.opened == {lost}
    assert not redone.already_done
    assert (redone.files_copied, redone.files_skipped) == (1, len(batch) - 1)
    assert (dest / lost).read_bytes() == FILES[lost]


def test_an_interrupted_batch_completes_when_run_again(s3_url, tmp_path):
    plan, batches = plan_batches(s3_url, tmp_path / "plan.jsonl", max_files=len(FILES))
    assert len(batches) == 1
    batch = batches[0]
    dest = tmp_path / "dest"
    half = plan.bytes // 2

    def killed_midway(progress: Progress) -> None:
        if progress.bytes_done >= half:
            raise Interrupted

    config = small_config(concurrency=2, chunk_size=64 * 1024)
    with pytest.raises(Interrupted):
        run_batch(s3_url, dest, 0, batch, config, on_progress=killed_midway)
    # The files verified before the interruption are in the batch's record (not complete).
    interrupted = read_batch_record(batch_record_path(dest, 0), 0)
    assert interrupted is not None and interrupted.counts is None
    recorded = {r.key for r in interrupted.records}
    landed = data_files(dest)
    assert 0 < len(landed) < len(FILES), "expected an interruption half way through"
    assert recorded and recorded <= set(landed)
    for record in interrupted.records:
        assert record.blake3 == blake3_hex(FILES[record.key]), record.key
    # What a kill -9 leaves besides: a temporary file, an append cut short, a record never renamed.
    (state_dir_of(dest) / "tmp" / "killed.part").write_bytes(b"partial")
    with batch_record_path(dest, 0).open("ab") as f:
        f.write(b'{"key":"c.t')
    record_path = batch_record_path(dest, 0)
    (record_path.parent / temporary_name(record_path.name)).write_bytes(b'{"batch":0')

    progress: list[Progress] = []
    result, source = run_batch(s3_url, dest, 0, batch, config, on_progress=progress.append)
    # Recorded files are kept; renamed files no record vouches for are copied again (safe).
    assert source.opened == set(FILES) - recorded
    assert (result.files, result.files_skipped) == (len(FILES), len(recorded))
    assert result.files_copied == len(FILES) - len(recorded)
    assert progress[-1].files_done == len(FILES) and progress[-1].bytes_done == plan.bytes
    for record in result.records:
        assert record.blake3 == blake3_hex(FILES[record.key]), record.key
    assert temp_files(dest) == []
    assert sorted(p.name for p in batch_record_path(dest, 0).parent.iterdir()) == ["0000000000.jsonl"]
    publish(dest, plan, 1)
    assert_staged(dest, FILES)


def test_publishing_with_a_batch_missing_names_it(s3_url, tmp_path):
    plan, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    dest = tmp_path / "dest"
    for index, batch in enumerate(batches):
        if index not in (1, 3):
            run_batch(s3_url, dest, index, batch)
    missing = r"2 of \d+ batches not copied \(missing or damaged: batch 1, 3\)$"
    with pytest.raises(TransferError, match=missing):
        publish(dest, plan, len(batches))
    assert not is_ready(dest)
    assert not (state_dir_of(dest) / "manifest.jsonl").exists()

    run_batch(s3_url, dest, 1, batches[1])
    # A damaged record (cut short) counts as missing: publishing never trusts it.
    record = batch_record_path(dest, 0)
    record.write_bytes(record.read_bytes()[:-10])
    with pytest.raises(TransferError, match=r"missing or damaged: batch 0, 3\)"):
        publish(dest, plan, len(batches))
    # Totals that do not add up to the plan's are refused too.
    for index in (0, 3):
        run_batch(s3_url, dest, index, batches[index])
    with pytest.raises(TransferError, match="the batches hold"):
        publish(dest, plan, len(batches), files=plan.files + 1)
    publish(dest, plan, len(batches))
    assert_staged(dest, FILES)


def test_nothing_there_is_every_batch_missing(tmp_path):
    with pytest.raises(TransferError, match=r"3 of 3 batches not copied \(missing or damaged: batch 0, 1, 2"):
        publish_batches(
            tmp_path / "nowhere", source_url="x", digest="d", batches=3, files=3, bytes=3, selection={}
        )
    assert not (tmp_path / "nowhere").exists()


def test_a_batch_delivered_after_publishing_keeps_the_dataset_ready(s3_client, bucket, s3_url, tmp_path):
    plan, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    dest = tmp_path / "dest"
    for index, batch in enumerate(batches):
        run_batch(s3_url, dest, index, batch)
    published = publish(dest, plan, len(batches))

    late, source = run_batch(s3_url, dest, 2, batches[2])  # its record went with publishing
    assert source.calls == [], "files the manifest vouches for are not read again"
    assert is_ready(dest)
    assert late.files_skipped == late.files
    assert publish(dest, plan, len(batches)) == published
    assert not (state_dir_of(dest) / "batches").exists()

    # The source changes; the new plan's batches reuse what is unchanged, and the batch
    # that rewrites a file takes READY away until the new dataset is published.
    changed = batches[-1][0].key
    new_bytes = payload("changed", 999)
    put_objects(s3_client, bucket, {f"ds/{changed}": new_bytes})
    replan, rebatches = plan_batches(s3_url, tmp_path / "replan.jsonl")
    assert replan.digest != plan.digest
    opened: set[str] = set()
    for index, batch in enumerate(rebatches):
        _, source = run_batch(s3_url, dest, index, batch)
        opened |= source.opened
        assert is_ready(dest) == (index < len(rebatches) - 1)
    assert opened == {changed}
    result = publish(dest, replan, len(rebatches))
    assert (result.digest, result.files_copied, result.files_skipped) == (replan.digest, 1, len(FILES) - 1)
    assert_staged(dest, {**FILES, changed: new_bytes})


LABEL = ".classification"


def test_label_files_are_checked_before_a_batch_copies(tmp_path):
    src = write_tree(tmp_path / "src", {**FILES, f"a/{LABEL}": b"internal", f"d/{LABEL}": b"public"})
    plan, batches = plan_batches(str(src), tmp_path / "plan.jsonl", label_file_name=LABEL)
    assert sorted(plan.label_files) == ["a", "d"]
    # Label files travel through the ledger too.
    labels = {
        d: LabelFile(f.directory, through_ledger(f.object), f.content) for d, f in plan.label_files.items()
    }
    config = small_config(recheck_labels=True)
    checked = {"label_file_name": LABEL, "label_files": labels}
    dest = tmp_path / "dest"
    a_batch = next(i for i, b in enumerate(batches) if any(o.key.startswith("a/") for o in b))
    (src / "a" / LABEL).write_bytes(b"secret!!")
    with pytest.raises(LabelChangedError, match=r"a/\.classification"):
        run_batch(str(src), dest, a_batch, batches[a_batch], config, **checked)
    assert not batch_record_path(dest, a_batch).exists()
    assert not (dest / "a").exists(), "copied before the label was checked"

    # A label file appearing where planning found none is a change too.
    c_batch = next(i for i, b in enumerate(batches) if any(o.key == "c.txt" for o in b))
    (src / LABEL).write_bytes(b"secret")
    with pytest.raises(LabelChangedError, match="appeared"):
        run_batch(str(src), dest, c_batch, batches[c_batch], config, **checked)

    # The service plans again (labels travel in the plan) and copies the new plan.
    (src / LABEL).unlink()
    plan, batches = plan_batches(str(src), tmp_path / "replan.jsonl", label_file_name=LABEL)
    labels = dict(plan.label_files)
    assert labels["a"].content == b"secret!!"
    for index, batch in enumerate(batches):
        run_batch(str(src), dest, index, batch, config, label_file_name=LABEL, label_files=labels)
    publish(dest, plan, len(batches))
    assert_staged(dest, FILES)  # label files label; they are not staged


def test_batch_arguments_are_checked(s3_url, tmp_path):
    _, batches = plan_batches(s3_url, tmp_path / "plan.jsonl")
    with pytest.raises(ValueError, match="ascend"):
        run_batch(s3_url, tmp_path / "dest", 0, list(reversed(batches[0])))
    with pytest.raises(ValueError, match="no object"):
        run_batch(s3_url, tmp_path / "dest", 0, [])
    with pytest.raises(ValueError, match="negative"):
        run_batch(s3_url, tmp_path / "dest", -1, batches[0])


# -- single-object URLs, read by a source that never listed ---------------------------


def test_single_object_s3_url_is_read_without_listing(s3_client, bucket, tmp_path):
    put_objects(
        s3_client,
        bucket,
        {
            "ds/file.bin": payload("one", 5000),
            "ds/file.bin.sibling": b"not me",
            "ds/big.bin": payload("big-one", 3 * MiB + 1),
            # "ds/dir" is both an object and a folder holding "ds/dir/dir": the folder wins.
            "ds/dir": b"the object named like the folder",
            "ds/dir/dir": b"inside the folder",
            "ds/dir/other": b"also inside",
        },
    )
    cases = {
        "file.bin": {"file.bin": payload("one", 5000)},
        "big.bin": {"big.bin": payload("big-one", 3 * MiB + 1)},  # ranged parts + HEAD checksum
        "dir": {"dir": b"inside the folder", "other": b"also inside"},
    }
    for name, expected in cases.items():
        url = f"s3://{bucket}/ds/{name}"
        plan, batches = plan_batches(url, tmp_path / f"{name}.jsonl")
        assert [o.key for b in batches for o in b] == sorted(expected)
        dest = tmp_path / f"dest-{name}"
        for index, batch in enumerate(batches):
            result, _ = run_batch(url, dest, index, batch)
            assert result.verified_source == len(batch), name
        publish(dest, plan, len(batches))
        assert_staged(dest, expected)
        # And a plain read of the planned object by a fresh source.
        obj = batches[0][0]
        reader = open_source(url).open(obj)
        try:
            assert reader.read(10 * MiB) == expected[obj.key]
        finally:
            reader.close()


@pytest.mark.parametrize("kind", ["local", "file-url", "memory"])
def test_single_file_url_is_read_without_listing(tmp_path, kind):
    data = payload("single", 3 * MiB + 1)
    if kind == "memory":
        fs = fsspec.filesystem("memory")
        root = f"/sg-batches-{tmp_path.name}"
        fs.pipe_file(f"{root}/only.bin", data)
        fs.pipe_file(f"{root}/sibling.bin", b"not me")
        url = f"memory:/{root}/only.bin"
    else:
        src = write_tree(tmp_path / "src", {"only.bin": data, "sibling.bin": b"not me"}) / "only.bin"
        url = str(src) if kind == "local" else src.as_uri()
    plan, batches = plan_batches(url, tmp_path / "plan.jsonl")
    assert [[o.key for o in b] for b in batches] == [["only.bin"]]
    dest = tmp_path / "dest"
    result, source = run_batch(url, dest, 0, batches[0])
    assert source.opened == {"only.bin"}
    assert result.records[0].blake3 == blake3_hex(data)
    publish(dest, plan, 1)
    assert_staged(dest, {"only.bin": data})
