"""Tests for transfer.writeback: which windows a write completes, and a starter that falls
back to nothing (durability left to the sync) where sync_file_range is missing or refused."""

import ctypes
import errno
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.writeback import SYNC_FILE_RANGE_WRITE, Writeback, windows_completed

W = 8 << 20


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 1 << 20, None),  # inside the first window
        (7 << 20, 1 << 20, (0, W)),  # ends the first window
        (W, 1 << 20, None),  # starts the second
        (3 << 20, 3 * W, (0, 3 * W)),  # one big write passes three boundaries
        (0, 0, None),
    ],
)
def test_windows_completed(offset, length, expected):
    assert windows_completed(offset, length, W) == expected


@given(sizes=st.lists(st.integers(1, 3 * W), min_size=1, max_size=40))
def test_sequential_writes_queue_every_whole_window_once_in_order(sizes):
    queued, offset = [], 0
    for n in sizes:
        span = windows_completed(offset, n, W)
        if span is not None:
            queued.append(span)
        offset += n
    covered = 0
    for start, size in queued:
        assert start == covered and size > 0 and size % W == 0
        covered += size
    assert covered == offset - offset % W


class Recording:
    def __init__(self, fail_with: int | None = None) -> None:
        self.calls: list[tuple[int, int, int, int]] = []
        self.fail_with = fail_with

    def __call__(self, fd: int, offset: int, size: int, flags: int) -> int:
        self.calls.append((fd, offset, size, flags))
        if self.fail_with is not None:
            ctypes.set_errno(self.fail_with)
            return -1
        return 0


def test_small_writes_never_call():
    call = Recording()
    writeback = Writeback(call)
    for offset in range(0, W - 4096, 4096):
        writeback.wrote(3, offset, 4096)
    assert call.calls == []


def test_a_completed_window_is_queued_for_write_only():
    call = Recording()
    Writeback(call).wrote(3, W - 1, 2)
    assert call.calls == [(3, 0, W, SYNC_FILE_RANGE_WRITE)]


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EINVAL, errno.ESPIPE])
def test_unsupported_switches_it_off_for_good_without_raising(code):
    call = Recording(fail_with=code)
    writeback = Writeback(call)
    writeback.wrote(3, 0, W)
    writeback.wrote(3, W, W)
    assert len(call.calls) == 1 and not writeback.enabled


def test_a_passing_failure_keeps_it_on():
    call = Recording(fail_with=errno.EIO)
    writeback = Writeback(call)
    writeback.wrote(3, 0, W)
    writeback.wrote(3, W, W)
    assert len(call.calls) == 2 and writeback.enabled


def test_missing_from_libc_is_a_no_op():
    writeback = Writeback(None)
    writeback.wrote(3, 0, 4 * W)  # a descriptor that is not even open: nothing is called
    assert not writeback.enabled


def test_libc_sync_file_range_on_a_real_file(tmp_path):
    writeback = Writeback.from_libc()
    assert writeback.enabled  # Linux and glibc have it
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"x" * W)
        writeback.wrote(fd, 0, W)
        assert writeback.enabled  # the kernel took it
    finally:
        os.close(fd)
