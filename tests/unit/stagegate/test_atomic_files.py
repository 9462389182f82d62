"""The one atomic-file writer: a new file appears whole or not at all, in a path or beside a
directory descriptor; nothing of the writer's is left behind, and no link is followed."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagegate.atomic_files import temporary_name, write_atomically


def test_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    final = tmp_path / "manifest.jsonl"
    (tmp_path / temporary_name(final.name)).write_bytes(b"a killed writer's")
    write_atomically(final, [b"one\n", b"two\n"])
    assert final.read_bytes() == b"one\ntwo\n"
    write_atomically(final, [b"three\n"])
    assert final.read_bytes() == b"three\n"
    assert os.listdir(tmp_path) == [final.name]


def test_writes_by_name_below_a_directory_descriptor(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_atomically("READY", [b"{}\n"], dir_fd=fd, mode=0o600)
        with pytest.raises(ValueError, match="bare name"):
            write_atomically("sub/READY", [b"{}\n"], dir_fd=fd)
    finally:
        os.close(fd)
    assert (tmp_path / "READY").read_bytes() == b"{}\n"
    assert (tmp_path / "READY").stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["READY"]


def test_a_planted_link_at_the_temporary_name_is_removed_not_followed(tmp_path: Path) -> None:
    final = tmp_path / "x.jsonl"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / temporary_name(final.name)).symlink_to(target)
    write_atomically(final, [b"new\n"])
    assert target.read_bytes() == b"keep"
    assert final.read_bytes() == b"new\n"


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "state.json"
    final.write_bytes(b"old\n")

    def chunks() -> Iterator[bytes]:
        yield b"half of the new"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(final, chunks())
    assert final.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == [final.name]


def test_the_content_is_synced_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order that makes it durable: fsync(file), rename, fsync(directory)."""
    calls: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def rename(*args: object, **kwargs: object) -> None:
        calls.append("rename")
        real_rename(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    write_atomically(tmp_path / "f", [b"x"])
    assert calls == ["fsync file", "rename", "fsync dir"]
