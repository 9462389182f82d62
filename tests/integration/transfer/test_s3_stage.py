"""Staging from a real S3 server (moto on loopback): the data arrives byte-identical and
verified, corrupted bytes are refused, reruns resume."""

import logging
import os
import tempfile
import zlib
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig as Boto3TransferConfig

from integration.helpers import (
    MiB,
    assert_staged,
    data_files,
    is_ready,
    moto_key,
    payload,
    put_objects,
    read_manifest,
    small_config,
    temp_files,
)
from stagegate.transfer import CopyEngine, DatasetDir, Durability, open_source, stage
from stagegate.transfer.errors import ChecksumMismatchError
from stagegate.transfer.progress import ProgressTracker

pytestmark = pytest.mark.integration


def _crc32(data: bytes) -> str:
    return f"crc32:{zlib.crc32(data):08x}"


def _upload_multipart(s3_client, bucket: str, key: str, data: bytes, tmp_path: Path) -> None:
    """A real multipart upload (boto3 refuses parts under 5 MiB, so ``data`` must be larger)."""
    with tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as f:
        f.write(data)
    config = Boto3TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3_client.upload_file(f.name, bucket, key, Config=config)
    Path(f.name).unlink()


def test_durability_file_fsyncs_a_file_copied_in_parts_once_before_its_rename(s3_client, bucket, tmp_path):
    files = {"big.bin": payload("big", 3 * MiB + 5), "small.txt": b"small"}  # parts, and whole
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    synced: list[int] = []

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        os.fsync(fd)

    src, dest = open_source(f"s3://{bucket}/ds"), tmp_path / "dest"
    tracker = ProgressTracker(len(files), sum(map(len, files.values())), None)
    config = small_config(durability=Durability.FILE)
    assert src.prefers_ranged_reads and len(files["big.bin"]) > config.multipart_threshold
    with (
        DatasetDir(dest) as dataset,
        CopyEngine(src, dataset, config, tracker, fsync=recording_fsync) as engine,
    ):
        for obj in src.list():
            engine.copy_file(obj)

    assert data_files(dest) == files
    assert sorted(synced) == sorted(os.stat(dest / key).st_ino for key in files)


def test_mixed_dataset_arrives_byte_identical(s3_client, bucket, tmp_path):
    small = {f"small/{i:05d}.dat": payload(f"s{i}", i % 1500) for i in range(2000)}
    files = {
        **small,
        "empty.txt": b"",
        "nested/empty": b"",
        "a/b/c/d/e.bin": payload("deep", 4321),
        "a-c": payload("sorts before a/", 17),
        "big/single.bin": payload("single", 6 * MiB + 123),  # one PUT, copied in 1 MiB parts
        "edge/threshold.bin": payload("thr", 2 * MiB),  # == threshold: copied whole
        "edge/threshold+1.bin": payload("thr+1", 2 * MiB + 1),  # last part is one byte
    }
    multipart = {"big/multipart.bin": payload("multi", 6 * MiB + 4567)}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    for key, data in multipart.items():
        _upload_multipart(s3_client, bucket, f"ds/{key}", data, tmp_path)
    # Console-style folder markers: zero-byte objects named like a directory.
    put_objects(s3_client, bucket, {"ds/dir/": b"", "ds/nested/deeper/marker/": b""})

    head = s3_client.head_object(Bucket=bucket, Key="ds/big/multipart.bin")
    assert head["ETag"].strip('"').endswith("-2"), "expected a real two-part upload"

    expected = {**files, **multipart}
    dest = tmp_path / "dest"
    progress = []
    result = stage(open_source(f"s3://{bucket}/ds"), dest, small_config(), on_progress=progress.append)

    manifest = assert_staged(dest, expected)
    assert not (dest / "dir").exists(), "a folder marker became part of the dataset"
    assert not (dest / "nested" / "deeper").exists()
    assert result.files == len(expected)
    assert result.bytes == sum(len(v) for v in expected.values())
    assert (result.files_copied, result.files_skipped) == (len(expected), 0)
    assert result.bytes_copied == result.bytes
    assert len(result.digest) == 64
    # Every single-PUT object carries a full-object CRC32 (boto3 adds it, moto returns it);
    # the multipart object's checksum is a composite, so it can only be verified locally.
    assert result.verified_source == len(files)
    assert result.verified_local == 1
    for key, data in files.items():
        assert manifest[key]["verification"] == "source", key
        assert manifest[key]["source_checksum"] == _crc32(data), key
    assert manifest["big/multipart.bin"]["verification"] == "local"
    # Progress reached the end exactly.
    last = progress[-1]
    assert (last.files_done, last.bytes_done) == (len(expected), result.bytes)


def test_folder_marker_at_the_prefix_root_is_skipped(s3_client, bucket, tmp_path):
    """Creating a folder in the S3 console makes a zero-byte 'prefix/' object; staging
    s3://bucket/prefix must skip it like any other folder marker."""
    put_objects(s3_client, bucket, {"ds/": b"", "ds/sub/": b"", "ds/a.txt": b"a", "ds/sub/b": b"bb"})
    dest = tmp_path / "dest"
    result = stage(open_source(f"s3://{bucket}/ds"), dest, small_config())
    assert result.files == 2
    assert_staged(dest, {"a.txt": b"a", "sub/b": b"bb"})


@pytest.mark.parametrize("size", [100_000, 3 * MiB + 5], ids=["whole", "in-parts"])
def test_corrupted_source_byte_is_refused(s3_client, bucket, tmp_path, caplog, size):
    good = {"a-good.bin": payload("good", 1000), "z-good.bin": payload("z", 2000)}
    original = payload("victim", size)
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in {**good, "victim.bin": original}.items()})
    stored = moto_key(bucket, "ds/victim.bin")
    etag, checksum = stored.etag, stored.checksum_value
    assert checksum, "moto should have stored the CRC32 boto3 sent"
    corrupted = bytearray(original)
    corrupted[size // 2] ^= 0x01
    stored.value = bytes(corrupted)  # same size; ETag and checksum stay those of the original
    assert (stored.etag, stored.checksum_value, stored.size) == (etag, checksum, size)
    assert stored.value != original

    dest = tmp_path / "dest"
    with (
        caplog.at_level(logging.WARNING, logger="stagegate.transfer.engine"),
        pytest.raises(ChecksumMismatchError, match=r"victim\.bin"),
    ):
        stage(open_source(f"s3://{bucket}/ds"), dest, small_config(max_attempts=3))

    retries = [r for r in caplog.records if "victim.bin" in r.getMessage() and "retrying" in r.getMessage()]
    assert len(retries) == 2, "the mismatch should have been retried twice before failing"
    assert not (dest / "victim.bin").exists()
    assert not is_ready(dest)
    assert temp_files(dest) == []
    for key, data in data_files(dest).items():  # whatever landed is intact
        assert data == good[key]


def test_resume_copies_only_what_is_missing_or_changed(s3_client, bucket, tmp_path):
    files = {f"d{i % 3}/f{i:02d}.bin": payload(f"r{i}", 1000 + 97 * i) for i in range(12)}
    files["big.bin"] = payload("big", 3 * MiB + 11)  # copied in parts
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    url = f"s3://{bucket}/ds"
    dest = tmp_path / "dest"
    first = stage(open_source(url), dest, small_config())
    assert first.files_copied == len(files)
    assert_staged(dest, files)

    untouched = {k: (dest / k).stat().st_mtime_ns for k in files}
    removed = ["d0/f00.bin", "d2/f05.bin", "big.bin"]
    for key in removed:
        (dest / key).unlink()
    second = stage(open_source(url), dest, small_config())
    assert (second.files_copied, second.files_skipped) == (3, len(files) - 3)
    assert second.bytes_copied == sum(len(files[k]) for k in removed)
    assert second.digest == first.digest
    assert_staged(dest, files)
    for key, mtime in untouched.items():
        if key not in removed:
            assert (dest / key).stat().st_mtime_ns == mtime, f"{key} was rewritten"

    # The source changes between runs: same size, different bytes.
    changed = "d1/f04.bin"
    files[changed] = payload("changed", len(files[changed]))
    put_objects(s3_client, bucket, {f"ds/{changed}": files[changed]})
    third = stage(open_source(url), dest, small_config())
    assert (third.files_copied, third.files_skipped) == (1, len(files) - 1)
    assert third.digest != first.digest
    manifest = assert_staged(dest, files)
    assert manifest[changed]["source_checksum"] == _crc32(files[changed])


def test_single_object_url_stages_that_file(s3_client, bucket, tmp_path):
    put_objects(
        s3_client,
        bucket,
        {
            "ds/file.bin": payload("one", 5000),
            "ds/file.bin.sibling": b"not me",
            "ds/other": b"nor me",
            "ds/big.bin": payload("big-one", 3 * MiB + 1),
        },
    )
    dest = tmp_path / "one"
    result = stage(open_source(f"s3://{bucket}/ds/file.bin"), dest, small_config())
    assert (result.files, result.bytes, result.verified_source) == (1, 5000, 1)
    assert_staged(dest, {"file.bin": payload("one", 5000)})

    dest = tmp_path / "big"  # a single object above the multipart threshold
    result = stage(open_source(f"s3://{bucket}/ds/big.bin"), dest, small_config())
    assert (result.files, result.verified_source) == (1, 1)
    assert_staged(dest, {"big.bin": payload("big-one", 3 * MiB + 1)})


def test_manifest_lists_every_file_once(s3_client, bucket, tmp_path):
    """Staging the same prefix twice keeps the manifest exact (no duplicated records)."""
    files = {f"k{i}": payload(f"m{i}", i * 10) for i in range(5)}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    dest = tmp_path / "dest"
    stage(open_source(f"s3://{bucket}/ds"), dest, small_config())
    again = stage(open_source(f"s3://{bucket}/ds"), dest, small_config())
    assert (again.files_copied, again.files_skipped) == (0, len(files))
    assert sorted(read_manifest(dest)) == sorted(files)
    assert_staged(dest, files)


@pytest.mark.parametrize("spelling", ["{b}/ds", "{b}/ds/", "{b}"], ids=["prefix", "slash", "bucket"])
def test_prefix_spellings_and_sibling_prefixes(s3_client, bucket, tmp_path, spelling):
    """'ds' means the folder ds/: objects under ds-other/ or named 'dsx' are not part of it."""
    inside = {"one": b"1", "sub/two": b"22"}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in inside.items()})
    dest = tmp_path / "dest"
    if spelling == "{b}":
        expected = {f"ds/{k}": v for k, v in inside.items()}
    else:
        put_objects(s3_client, bucket, {"ds-other/x": b"no", "dsx": b"no", "d": b"no"})
        expected = inside
    result = stage(open_source("s3://" + spelling.format(b=bucket)), dest, small_config())
    assert result.files == len(expected)
    assert_staged(dest, expected)
