"""Staging from a POSIX directory (local disk or NFS), a file:// URL, or a single file."""

import os
from pathlib import Path

import pytest

from integration.helpers import (
    MiB,
    assert_staged,
    payload,
    small_config,
    write_tree,
)
from transfer import open_source, stage

pytestmark = pytest.mark.integration

FILES = {
    "empty": b"",
    "top.txt": b"top",
    "a-c": b"dash",
    "a/b/c.bin": payload("c", 70_000),
    "a/big.bin": payload("big", 3 * MiB + 17),  # copied in ranged parts
    "caf\u00e9/men\u00fc.txt": b"unicode names",
    "spaces in/name with spaces": b"s p a c e",
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", FILES)


def test_local_directory_stages_byte_identical(source, tmp_path):
    dest = tmp_path / "dest"
    result = stage(open_source(str(source)), dest, small_config())
    manifest = assert_staged(dest, FILES)
    assert (result.files, result.bytes) == (len(FILES), sum(map(len, FILES.values())))
    # POSIX publishes no checksum: everything is verified locally.
    assert (result.verified_source, result.verified_local) == (0, len(FILES))
    assert {r["verification"] for r in manifest.values()} == {"local"}
    assert {r["source_checksum"] for r in manifest.values()} == {None}


def test_file_url_stages_byte_identical(source, tmp_path):
    dest = tmp_path / "dest"
    result = stage(open_source(source.as_uri()), dest, small_config())
    assert result.source == source.as_uri()
    assert_staged(dest, FILES)


def test_file_url_with_escaped_characters(tmp_path):
    src = write_tree(tmp_path / "src dir %", {"x y": b"1"})
    dest = tmp_path / "dest"
    stage(open_source(src.as_uri()), dest, small_config())
    assert_staged(dest, {"x y": b"1"})


def test_symlinks_in_the_source_are_not_followed(source, tmp_path):
    secret = write_tree(tmp_path / "secret", {"password.txt": b"hunter2"})
    os.symlink(secret / "password.txt", source / "link-to-file")
    os.symlink(secret, source / "a" / "link-to-dir", target_is_directory=True)
    os.symlink(tmp_path / "nowhere", source / "dangling")
    dest = tmp_path / "dest"
    result = stage(open_source(str(source)), dest, small_config())
    assert result.files == len(FILES)
    assert_staged(dest, FILES)  # fails on any symlink or extra file in dest
    assert not (dest / "link-to-file").exists()
    assert not (dest / "a" / "link-to-dir").exists()


@pytest.mark.parametrize("size", [5, 3 * MiB + 1], ids=["small", "in-parts"])
def test_single_file_source(tmp_path, size):
    data = payload("single", size)
    src = tmp_path / "src" / "only.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    (src.parent / "sibling.bin").write_bytes(b"not me")
    for url in (str(src), src.as_uri()):
        dest = tmp_path / f"dest-{len(url)}"
        result = stage(open_source(url), dest, small_config())
        assert (result.files, result.bytes) == (1, size)
        assert_staged(dest, {"only.bin": data})


def test_local_resume_after_deleting_files(source, tmp_path):
    dest = tmp_path / "dest"
    stage(open_source(str(source)), dest, small_config())
    for key in ("top.txt", "a/big.bin", "a/b/c.bin"):
        (dest / key).unlink()
    again = stage(open_source(str(source)), dest, small_config())
    assert (again.files_copied, again.files_skipped) == (3, len(FILES) - 3)
    assert_staged(dest, FILES)


def test_durability_file_mode(source, tmp_path):
    from transfer import Durability

    dest = tmp_path / "dest"
    stage(open_source(str(source)), dest, small_config(durability=Durability.FILE))
    assert_staged(dest, FILES)
