"""transfer.mapped.file_views: a file's bytes as views of its page cache, in order, each
released before the next; a file shorter than promised raises instead of mapping past its
end (SIGBUS); where a file cannot be mapped, the bytes come through a buffer instead."""

import os
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer import mapped
from stagegate.transfer.errors import TransferError
from stagegate.transfer.mapped import file_views


def _file(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 70_000), step=st.sampled_from([4096, 8192, 65_536, 1 << 20]))
def test_the_views_are_the_files_bytes_in_order(tmp_path_factory, size, step):
    data = os.urandom(size)
    fd = _file(tmp_path_factory.mktemp("m") / "f", data)
    try:
        views = []
        for view in file_views(fd, size, step):
            assert len(view) <= step
            views.append(bytes(view))
        assert b"".join(views) == data
    finally:
        os.close(fd)


def test_only_the_size_asked_for_is_read(tmp_path):
    fd = _file(tmp_path / "f", b"abcdef")
    try:
        assert b"".join(bytes(v) for v in file_views(fd, 4, 4096)) == b"abcd"
        assert list(file_views(fd, 0)) == []
    finally:
        os.close(fd)


def test_a_file_shorter_than_promised_raises_before_it_is_mapped(tmp_path):
    fd = _file(tmp_path / "f", b"x" * 100)
    try:
        with pytest.raises(TransferError, match="shorter than written"):
            list(file_views(fd, 5000))
    finally:
        os.close(fd)


def test_a_step_the_mapping_cannot_start_at_is_refused(tmp_path):
    fd = _file(tmp_path / "f", b"z" * 100)
    try:
        with pytest.raises(ValueError, match="multiple"):
            list(file_views(fd, 100, 1000))
    finally:
        os.close(fd)


def test_a_view_kept_past_its_turn_is_released(tmp_path):
    fd = _file(tmp_path / "f", b"y" * 10_000)
    try:
        kept = list(file_views(fd, 10_000, 4096))  # the map closed behind them
        with pytest.raises(ValueError):
            bytes(kept[0])
    finally:
        os.close(fd)


def test_a_file_that_cannot_be_mapped_is_read_through_a_buffer(tmp_path, monkeypatch):
    data = os.urandom(50_000)
    fd = _file(tmp_path / "f", data)

    def refuse(*_args, **_kwargs):
        raise OSError(19, "No such device")  # what mmap says on a file system without it

    monkeypatch.setattr(mapped.mmap, "mmap", refuse)
    try:
        hasher = blake3.blake3()
        for view in file_views(fd, len(data), 8192):
            hasher.update(view)
        assert hasher.digest() == blake3.blake3(data).digest()
    finally:
        os.close(fd)
