"""Staging from a POSIX directory (local disk or NFS), a file:// URL, or a single file."""

import os
from pathlib import Path

import pytest

from integration.helpers import (
    MiB,
    assert_staged,
    is_ready,
    payload,
    small_config,
    write_tree,
)
from stagegate.transfer import CopyEngine, DatasetDir, Durability, open_source, stage
from stagegate.transfer.errors import SourceChangedError
from stagegate.transfer.progress import ProgressTracker

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


@pytest.mark.parametrize("durability", [Durability.FILE, Durability.BATCH])
def test_durability_file_mode(source, tmp_path, durability):
    """FILE forces each file's bytes to disk, once, before its rename; BATCH leaves that to one
    syncfs per batch, so the engine fsyncs no file. (test_s3_stage.py: a file copied in parts.)"""
    synced: list[int] = []  # the inode behind each descriptor the engine fsynced

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        os.fsync(fd)

    src, dest = open_source(str(source)), tmp_path / "dest"
    tracker = ProgressTracker(len(FILES), sum(map(len, FILES.values())), None)
    config = small_config(durability=durability)
    with (
        DatasetDir(dest) as dataset,
        CopyEngine(src, dataset, config, tracker, fsync=recording_fsync) as engine,
    ):
        for obj in src.list():
            engine.copy_file(obj)

    staged = sorted(os.stat(dest / key).st_ino for key in FILES)  # a rename keeps the inode
    assert sorted(synced) == (staged if durability is Durability.FILE else [])


def _rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place with ``data`` (same size) and put its mtime back, as a careless
    or hostile writer can: only ctime (and, for a replacement, the inode) can tell."""
    before = path.stat()
    assert len(data) == before.st_size
    # The kernel stamps ctime at tick granularity: rewrite until the clock has moved on.
    for _ in range(10_000):
        path.write_bytes(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            break
    after = path.stat()
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (
        before.st_mtime_ns,
        before.st_size,
        before.st_ino,
    )
    assert after.st_ctime_ns != before.st_ctime_ns


def test_file_rewritten_with_its_mtime_put_back_is_copied_again(source, tmp_path):
    dest = tmp_path / "dest"
    stage(open_source(str(source)), dest, small_config())
    changed = payload("changed", 70_000)
    _rewrite_keeping_size_and_mtime(source / "a/b/c.bin", changed)

    again = stage(open_source(str(source)), dest, small_config())

    assert again.files_copied == 1  # the rewritten file, not vouched for by the old record
    assert_staged(dest, {**FILES, "a/b/c.bin": changed})


def test_file_rewritten_with_its_mtime_put_back_after_planning_fails_the_staging(source, tmp_path):
    dest = tmp_path / "dest"

    def rewrite(plan):
        _rewrite_keeping_size_and_mtime(source / "a/b/c.bin", payload("changed", 70_000))

    with pytest.raises(SourceChangedError, match=r"a/b/c\.bin"):
        stage(open_source(str(source)), dest, small_config(), on_plan=rewrite)
    assert not is_ready(dest)


def test_a_directory_swapped_for_a_symlink_mid_listing_lists_nothing_of_the_other_tree(tmp_path):
    """The listing reaches each directory by descriptor, never through a link: a directory
    replaced by a symlink to someone else's tree between two listings fails the plan instead
    of listing that tree's files under this source's keys."""
    src = write_tree(tmp_path / "src", {"a/one.bin": b"1", "b/two.bin": b"2"})
    other = write_tree(tmp_path / "bob", {"secret.bin": b"bob's"})
    listing = open_source(str(src)).list()
    assert next(listing).key == "a/one.bin"  # 'a' listed; 'b' not yet
    os.rename(src / "b", tmp_path / "b-moved")
    os.symlink(other, src / "b")
    with pytest.raises(SourceChangedError, match="symlink"):
        list(listing)


def test_a_read_never_goes_through_a_directory_swapped_for_a_symlink(tmp_path):
    src = write_tree(tmp_path / "src", {"a/f.bin": b"mine"})
    source = open_source(str(src))
    [obj] = list(source.list())
    # The same inode reached through a symlinked directory: the revision would still match.
    elsewhere = tmp_path / "elsewhere"
    os.rename(src / "a", elsewhere)
    os.symlink(elsewhere, src / "a")
    with pytest.raises(SourceChangedError, match="symlink"):
        source.open(obj)
