"""The POSIX data path on a real disk: buffers reused across many files corrupt nothing,
writeback starts as big files are written (and a kernel without sync_file_range changes
nothing but speed), and big objects are split by need, not by a fixed size."""

import ctypes
import errno
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import MiB, assert_staged, blake3_hex, payload, read_manifest, temp_files, write_tree
from stagegate.transfer import CopyEngine, DatasetDir, TransferConfig, mapped, open_source, stage
from stagegate.transfer.errors import TransferError
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.progress import ProgressTracker
from stagegate.transfer.writeback import (
    SYNC_FILE_RANGE_WRITE,
    WRITEBACK_WINDOW,
    Writeback,
    libc_sync_file_range,
)

pytestmark = pytest.mark.integration

CHUNK = 64 << 10


def _many_files() -> dict[str, bytes]:
    rng = random.Random("buffers")
    edges = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK // 2]
    sizes = edges * 4 + [rng.randint(0, 3 * MiB) for _ in range(300)]
    files = {f"d{i % 7}/f{i:04d}.bin": payload(f"f{i}", size) for i, size in enumerate(sizes)}
    files["big/a.bin"] = payload("a", 17 * MiB + 5)
    files["big/b.bin"] = payload("b", 2 * WRITEBACK_WINDOW)
    return files


def test_many_files_through_reused_buffers_stage_byte_identical(tmp_path):
    """Every thread reads into one buffer it reuses; a chunk still being written or hashed
    when the next read lands would show up here as a file with another file's bytes."""
    files = _many_files()
    src = write_tree(tmp_path / "src", files)
    config = TransferConfig(concurrency=8, chunk_size=CHUNK, batch_max_files=50)
    stage(open_source(str(src)), tmp_path / "dest", config)
    assert_staged(tmp_path / "dest", files)


def test_the_local_reader_fills_the_callers_buffer(tmp_path):
    data = payload("r", 3 * CHUNK + 11)
    src = open_source(str(write_tree(tmp_path / "src", {"f": data})))
    (obj,) = src.list()
    reader: Any = src.open(obj)
    buffer = memoryview(bytearray(CHUNK))
    got = bytearray()
    try:
        while n := reader.readinto(buffer):
            got += buffer[:n]
    finally:
        reader.close()
    assert bytes(got) == data


class Recording:
    """The real sync_file_range, or a refusal with ``fail_with``, with every call kept."""

    def __init__(self, fail_with: int | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.fail_with = fail_with
        self._real = libc_sync_file_range()
        self._lock = threading.Lock()

    def __call__(self, fd: int, offset: int, size: int, flags: int) -> int:
        assert flags == SYNC_FILE_RANGE_WRITE
        with self._lock:
            self.calls.append((os.fstat(fd).st_ino, offset, size))
        if self.fail_with is not None:
            ctypes.set_errno(self.fail_with)
            return -1
        assert self._real is not None
        return self._real(fd, offset, size, flags)


def _copy(src_dir: Path, dest: Path, writeback: Writeback, config: TransferConfig) -> None:
    src = open_source(str(src_dir))
    objects = list(src.list())
    tracker = ProgressTracker(len(objects), sum(o.size for o in objects), None)
    with (
        DatasetDir(dest, writeback=writeback) as dataset,
        CopyEngine(src, dataset, config, tracker) as engine,
    ):
        engine.collect(engine.submit_all((obj, None) for obj in objects))


def test_writeback_starts_window_by_window_as_a_big_file_is_written(tmp_path):
    files = {"big.bin": payload("big", 2 * WRITEBACK_WINDOW + 3 * MiB), "small.bin": payload("s", 70_000)}
    src = write_tree(tmp_path / "src", files)
    call = Recording()
    _copy(src, tmp_path / "dest", Writeback(call), TransferConfig(concurrency=2))
    big = os.stat(tmp_path / "dest" / "big.bin").st_ino  # a rename keeps the inode
    assert call.calls == [(big, 0, WRITEBACK_WINDOW), (big, WRITEBACK_WINDOW, WRITEBACK_WINDOW)]
    for key, data in files.items():
        assert (tmp_path / "dest" / key).read_bytes() == data


@pytest.mark.parametrize("refusal", [errno.ENOSYS, errno.EINVAL, None])
def test_without_sync_file_range_the_copy_is_the_same(tmp_path, refusal):
    """Refused by the kernel (ENOSYS, EINVAL on some filesystems) or missing from libc
    (None): the first refusal switches it off, and every byte still lands."""
    files = {f"f{i}.bin": payload(f"f{i}", (i + 1) * 5 * MiB) for i in range(4)}
    src = write_tree(tmp_path / "src", files)
    call = Recording(fail_with=refusal) if refusal is not None else None
    writeback = Writeback(call)
    _copy(src, tmp_path / "dest", writeback, TransferConfig(concurrency=4))
    assert not writeback.enabled
    if call is not None:  # once, or once per thread that asked at the same moment
        assert 1 <= len(call.calls) <= 4
    for key, data in files.items():
        assert (tmp_path / "dest" / key).read_bytes() == data


class RangedLocal:
    """A local source asking for ranged reads (as an object store does), recording them."""

    prefers_ranged_reads = True

    def __init__(self, root: Path) -> None:
        self._inner = open_source(str(root))
        self.ranges: dict[str, list[tuple[int, int | None]]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> Any:
        with self._lock:
            self.ranges.setdefault(obj.key, []).append((offset, length))
        return self._inner.open(obj, offset, length)


def test_big_objects_are_split_only_as_far_as_the_connections_need(tmp_path):
    """4 big objects, 16 part threads: 4 parts each, not the 16 a 1 MiB part size would cut."""
    files = {f"f{i}.bin": payload(f"f{i}", 16 * MiB) for i in range(4)}
    source = RangedLocal(write_tree(tmp_path / "src", files))
    config = TransferConfig(concurrency=16, part_size=1 * MiB, multipart_threshold=2 * MiB)
    objects = list(source.list())
    tracker = ProgressTracker(len(objects), sum(o.size for o in objects), None)
    with DatasetDir(tmp_path / "dest") as dataset, CopyEngine(source, dataset, config, tracker) as engine:  # type: ignore[arg-type]
        engine.collect(engine.submit_all((obj, None) for obj in objects))
    for key, data in files.items():
        assert sorted(source.ranges[key]) == [(i * 4 * MiB, 4 * MiB) for i in range(4)]
        assert (tmp_path / "dest" / key).read_bytes() == data


class KernelCopies:
    """``os.copy_file_range`` as the engine calls it: the real one, counting the bytes it
    copied, or failing with ``fail_with`` from the ``fail_from``-th call on (``times`` times)."""

    def __init__(self, fail_with: int | None = None, fail_from: int = 0, times: int = 1 << 30) -> None:
        self.calls = 0
        self.copied = 0
        self.fail_with = fail_with
        self.fail_from = fail_from
        self.times = times
        self._real = os.copy_file_range
        self._lock = threading.Lock()

    def __call__(self, src: int, dst: int, count: int, *offsets: Any) -> int:
        with self._lock:
            self.calls += 1
            failing = self.fail_with is not None and self.calls > self.fail_from and self.times > 0
            if failing:
                self.times -= 1
        if failing:
            assert self.fail_with is not None
            raise OSError(self.fail_with, os.strerror(self.fail_with))
        n = self._real(src, dst, count, *offsets)
        with self._lock:
            self.copied += n
        return n


def _big_and_small() -> dict[str, bytes]:
    return {
        "big.bin": payload("big", 9 * CHUNK + 7),
        "d/small.bin": payload("small", 1000),
        "d/empty.bin": b"",
    }


def test_posix_bytes_are_copied_inside_the_kernel_and_hashed_as_written(tmp_path, monkeypatch):
    """Every byte goes through copy_file_range (none through a Python buffer on its way to the
    dataset), and the manifest's BLAKE3 is that of the bytes at their final names."""
    files = _big_and_small()
    src = write_tree(tmp_path / "src", files)
    kernel = KernelCopies()
    monkeypatch.setattr(os, "copy_file_range", kernel)
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(concurrency=2, chunk_size=CHUNK))
    assert kernel.copied == sum(len(d) for d in files.values())
    assert_staged(tmp_path / "dest", files)


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL])
@pytest.mark.parametrize("after_calls", [0, 3])
def test_a_kernel_that_will_not_copy_leaves_the_rest_to_the_buffers(
    tmp_path, monkeypatch, refusal, after_calls
):
    """Refused at once or part way through a file (another filesystem, an old kernel): the
    buffers carry on at the byte where the kernel stopped, and every file is exact."""
    files = _big_and_small()
    src = write_tree(tmp_path / "src", files)
    monkeypatch.setattr(os, "copy_file_range", KernelCopies(refusal, fail_from=after_calls))
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(concurrency=1, chunk_size=CHUNK))
    assert_staged(tmp_path / "dest", files)


def test_a_full_disk_in_a_kernel_copy_fails_the_file_as_a_write(tmp_path, monkeypatch):
    """ENOSPC is the destination's: no retry, the message says where, no partial file left."""
    files = {"big.bin": payload("big", 4 * CHUNK)}
    src = write_tree(tmp_path / "src", files)
    kernel = KernelCopies(errno.ENOSPC, fail_from=1)
    monkeypatch.setattr(os, "copy_file_range", kernel)
    with pytest.raises(TransferError, match=r"cannot write it under .*No space left"):
        stage(open_source(str(src)), tmp_path / "dest", TransferConfig(chunk_size=CHUNK, max_attempts=3))
    assert kernel.calls == 2  # one copied chunk, one refusal: not retried
    assert not (tmp_path / "dest" / "big.bin").exists()
    assert temp_files(tmp_path / "dest") == []


def test_a_failed_read_in_a_kernel_copy_is_retried(tmp_path, monkeypatch):
    """EIO from the source mid-file: the file is copied again from its start, exactly."""
    files = {"big.bin": payload("big", 4 * CHUNK)}
    src = write_tree(tmp_path / "src", files)
    monkeypatch.setattr(os, "copy_file_range", KernelCopies(errno.EIO, fail_from=2, times=1))
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(chunk_size=CHUNK, max_attempts=3))
    assert_staged(tmp_path / "dest", files)


def _windows_and_tail() -> dict[str, bytes]:
    # Two whole 8 MiB windows, then a tail under one; a file under a window; an empty one.
    return {
        "big.bin": payload("big", 2 * mapped.STEP + 3 * MiB + 5),
        "d/mid.bin": payload("mid", mapped.STEP - 1),
        "d/empty.bin": b"",
    }


class CountedMaps:
    """``mmap.mmap``, counting the windows mapped (and their lengths)."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self._real = mapped.mmap.mmap

    def __call__(self, fd: int, length: int, *args: Any, **kwargs: Any) -> Any:
        self.lengths.append(length)
        return self._real(fd, length, *args, **kwargs)


def test_a_big_file_is_hashed_from_mapped_windows_and_its_tail_read_back(tmp_path, monkeypatch):
    """Whole 8 MiB windows of a kernel-copied file are hashed from the mapped page cache and
    the rest is read back: the manifest's BLAKE3 is still exactly that of the bytes."""
    files = _windows_and_tail()
    src = write_tree(tmp_path / "src", files)
    maps = CountedMaps()
    monkeypatch.setattr(mapped.mmap, "mmap", maps)
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(concurrency=2, chunk_size=1 * MiB))
    assert_staged(tmp_path / "dest", files)
    assert maps.lengths == [mapped.STEP, mapped.STEP]  # big.bin's two windows; nothing else mapped


@pytest.mark.parametrize("after_calls", [9, 19])
def test_a_kernel_that_stops_copying_past_a_window_leaves_exact_files(tmp_path, monkeypatch, after_calls):
    """The kernel refuses after one window (and after two) of 1 MiB copies: what it copied is
    hashed (mapped, then read back), the buffers carry on from that byte, every file is exact."""
    files = _windows_and_tail()
    src = write_tree(tmp_path / "src", files)
    monkeypatch.setattr(os, "copy_file_range", KernelCopies(errno.EXDEV, fail_from=after_calls))
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(concurrency=1, chunk_size=1 * MiB))
    assert_staged(tmp_path / "dest", files)


def test_the_mapped_hash_is_of_the_bytes_as_written(tmp_path, monkeypatch):
    """The hash reads the destination, not the source: a byte of the temporary file changed
    after the kernel copied it shows in the manifest's BLAKE3 (the scrub and every cache hit
    compare files with it), where hashing the source's bytes would have hidden it."""
    files = {"big.bin": payload("big", 2 * mapped.STEP)}
    src = write_tree(tmp_path / "src", files)
    real = mapped.file_views

    def flip_a_byte(fd: int, size: int, step: int = mapped.STEP, start: int = 0) -> Any:
        os.pwrite(fd, bytes([files["big.bin"][start] ^ 0xFF]), start)
        return real(fd, size, step, start)

    monkeypatch.setattr("stagegate.transfer.engine.file_views", flip_a_byte)
    stage(open_source(str(src)), tmp_path / "dest", TransferConfig(concurrency=1, chunk_size=1 * MiB))
    written = (tmp_path / "dest" / "big.bin").read_bytes()
    assert written != files["big.bin"]
    assert read_manifest(tmp_path / "dest")["big.bin"]["blake3"] == blake3_hex(written)
