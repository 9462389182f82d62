"""Sealing and fingerprinting a published dataset (transfer.sealed), on a real directory."""

import os
import stat
from pathlib import Path

import pytest

from stagegate.transfer.sealed import (
    changed_only_ctimes,
    file_hashes,
    fingerprint,
    fingerprint_of,
    inodes_of,
    is_sealed,
    seal,
    snapshot,
    unseal,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "x.bin").write_bytes(b"x" * 100)
    (root / "y.bin").write_bytes(b"y" * 10)
    return root


def test_seal_makes_everything_read_only_and_unseal_lets_it_be_removed(tree: Path) -> None:
    seal(tree)
    modes = {p.relative_to(tree).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in tree.rglob("*")}
    assert is_sealed(tree)
    assert all(m == (0o555 if (tree / k).is_dir() else 0o444) for k, m in modes.items()), modes
    unseal(tree)
    assert not is_sealed(tree)


def test_the_fingerprint_is_stable_and_sees_every_kind_of_change(tree: Path) -> None:
    seal(tree)
    before = fingerprint(tree)
    assert fingerprint(tree) == before
    target = tree / "a" / "b" / "x.bin"
    st = target.stat()
    # Rewritten at the same size, mode and mtime put back: the ctime still moved.
    target.chmod(0o644)
    with target.open("r+b") as f:
        f.write(b"E")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    target.chmod(0o444)
    assert fingerprint(tree) != before


@pytest.mark.parametrize("change", ["add", "remove", "rename", "chmod"])
def test_added_removed_renamed_or_rechmodded_entries_change_it(tree: Path, change: str) -> None:
    before = fingerprint(tree)
    if change == "add":
        (tree / "a" / "new.bin").write_bytes(b"")
    elif change == "remove":
        (tree / "y.bin").unlink()
    elif change == "rename":
        (tree / "y.bin").rename(tree / "z.bin")
    else:
        (tree / "y.bin").chmod(0o666)
    assert fingerprint(tree) != before


def test_file_hashes_come_in_key_order_and_leave_nothing_inside_out(tree: Path) -> None:
    # The state lives beside the dataset now: an older layout's state dir inside is not the
    # dataset's, so the scrub must see it (and quarantine the copy), not skip it.
    (tree / ".stagegate").mkdir()
    (tree / ".stagegate" / "READY").write_text("{}")
    keys = [k for k, _ in file_hashes(tree)]
    assert keys == [".stagegate/READY", "a/b/x.bin", "y.bin"]
    os.mkfifo(tree / "fifo")
    assert dict(file_hashes(tree))["fifo"] is None


def test_sealing_again_leaves_a_sealed_file_untouched(tree: Path) -> None:
    # A file linked in from another cached dataset is sealed already: a chmod would move its
    # ctime, and with it the other dataset's fingerprint.
    seal(tree)
    before = (tree / "y.bin").stat().st_ctime_ns
    unseal(tree)
    seal(tree)
    assert (tree / "y.bin").stat().st_ctime_ns == before


def test_only_a_link_count_change_of_a_shared_file_is_taken_as_harmless(tree: Path, tmp_path: Path) -> None:
    seal(tree)
    before = snapshot(tree)
    shared = tree / "a" / "b" / "x.bin"
    os.link(shared, tmp_path / "other-name")  # what a take from this dataset does
    after = snapshot(tree)
    assert fingerprint(tree) != fingerprint_of(before), "the ctime moved"
    assert changed_only_ctimes(before, after, {shared.stat().st_ino})
    assert not changed_only_ctimes(before, after, set()), "not among the inodes touched"
    assert shared.stat().st_ino in inodes_of(after)
    # Anything else that changed meanwhile still shows.
    (tree / "y.bin").chmod(0o644)
    assert not changed_only_ctimes(before, snapshot(tree), {shared.stat().st_ino})
