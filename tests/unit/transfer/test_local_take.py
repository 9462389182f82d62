"""Taking a file from a dataset cached on the node (transfer.local_take), on a real directory:
the way the filesystem allows, and never a file that does not hash to its manifest's BLAKE3."""

import os
from pathlib import Path

import blake3
import pytest

from stagegate.transfer.local_take import TakeMethod, take_cached
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.origins import CachedCopy
from stagegate.transfer.sealed import seal
from stagegate.transfer.sink import DatasetDir

DATA = b"cached bytes " * 1000


@pytest.fixture
def cached_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "datasets" / "d1"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.bin").write_bytes(DATA)
    seal(root)
    return root


def copy_of(root: Path, key: str = "sub/a.bin", digest: str | None = None) -> CachedCopy:
    return CachedCopy(
        "d1",
        str(root),
        "s3://b/v1",
        key,
        len(DATA),
        '"e"',
        None,
        digest or blake3.blake3(DATA).hexdigest(),
        "source",
    )


def new_dataset(tmp_path: Path) -> DatasetDir:
    return DatasetDir(tmp_path / "datasets" / "d2")


def leftovers(dataset: DatasetDir) -> list[str]:
    return sorted(os.listdir(dataset.state_path / "tmp"))


def test_a_sealed_file_is_linked_where_no_reflink_is_possible(cached_dataset: Path, tmp_path: Path) -> None:
    obj = SourceObject("a.bin", len(DATA), '"e"')
    with new_dataset(tmp_path) as dataset:
        taken = take_cached(dataset, obj, copy_of(cached_dataset))
        assert taken is not None
        # ext4 here has no reflink: a link of the sealed file (on a filesystem that clones, a reflink).
        assert taken.method in (TakeMethod.REFLINK, TakeMethod.LINK)
        target = dataset.path / "a.bin"
        assert target.read_bytes() == DATA
        assert taken.record.blake3 == blake3.blake3(DATA).hexdigest()
        assert taken.record.mtime_ns == target.stat().st_mtime_ns
        if taken.method is TakeMethod.LINK:
            assert target.stat().st_ino == (cached_dataset / "sub" / "a.bin").stat().st_ino
        assert leftovers(dataset) == []


def test_a_file_not_sealed_is_copied_never_linked(cached_dataset: Path, tmp_path: Path) -> None:
    (cached_dataset / "sub").chmod(0o755)
    (cached_dataset / "sub" / "a.bin").chmod(0o644)  # writable: sharing its inode would share writes
    obj = SourceObject("a.bin", len(DATA), '"e"')
    with new_dataset(tmp_path) as dataset:
        taken = take_cached(dataset, obj, copy_of(cached_dataset), (TakeMethod.LINK, TakeMethod.COPY))
        assert taken is not None and taken.method is TakeMethod.COPY
        assert (dataset.path / "a.bin").stat().st_ino != (cached_dataset / "sub" / "a.bin").stat().st_ino
        assert (dataset.path / "a.bin").read_bytes() == DATA


@pytest.mark.parametrize("methods", [(TakeMethod.LINK,), (TakeMethod.COPY,)])
def test_a_tampered_cached_file_is_never_passed_on(cached_dataset: Path, tmp_path: Path, methods) -> None:  # type: ignore[no-untyped-def]
    target = cached_dataset / "sub" / "a.bin"
    st = target.stat()
    (cached_dataset / "sub").chmod(0o755)
    target.chmod(0o644)
    with target.open("r+b") as f:
        f.write(b"X")  # same size
    target.chmod(0o444)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    obj = SourceObject("a.bin", len(DATA), '"e"')
    with new_dataset(tmp_path) as dataset:
        assert take_cached(dataset, obj, copy_of(cached_dataset), methods) is None
        assert not (dataset.path / "a.bin").exists(), "nothing at the final name"
        assert leftovers(dataset) == [], "no temporary file left"


def test_a_symlink_or_a_missing_file_or_another_size_is_not_taken(
    cached_dataset: Path, tmp_path: Path
) -> None:
    (cached_dataset / "sub").chmod(0o755)
    (cached_dataset / "sub" / "link.bin").symlink_to(cached_dataset / "sub" / "a.bin")
    with new_dataset(tmp_path) as dataset:
        obj = SourceObject("a.bin", len(DATA), '"e"')
        assert take_cached(dataset, obj, copy_of(cached_dataset, "sub/link.bin")) is None
        assert take_cached(dataset, obj, copy_of(cached_dataset, "sub/gone.bin")) is None
        assert take_cached(dataset, SourceObject("a.bin", 5, '"e"'), copy_of(cached_dataset)) is None
        assert not (dataset.path / "a.bin").exists()
        assert leftovers(dataset) == []


def _never_hashed(*_: object) -> str:
    raise AssertionError("a link of a file as sealed is verified by the seal, not read again")


def test_a_link_of_the_file_as_sealed_is_verified_by_the_seal_not_hashed(
    cached_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = (cached_dataset / "sub" / "a.bin").lstat()  # what the fingerprint check saw
    monkeypatch.setattr("stagegate.transfer.local_take._hash_fd", _never_hashed)
    obj = SourceObject("a.bin", len(DATA), '"e"')
    with new_dataset(tmp_path) as dataset:
        taken = take_cached(dataset, obj, copy_of(cached_dataset), (TakeMethod.LINK,), sealed=sealed)
        assert taken is not None and taken.method is TakeMethod.LINK
        assert taken.record.blake3 == blake3.blake3(DATA).hexdigest()
        assert (dataset.path / "a.bin").read_bytes() == DATA


@pytest.mark.skipif(os.geteuid() != 0, reason="root rewrites a sealed file (0444) in place")
def test_a_file_root_rewrote_after_the_seal_check_is_hashed_and_refused(
    cached_dataset: Path, tmp_path: Path
) -> None:
    # The dataset matched its fingerprint when checked; root then rewrites one file in place
    # (no chmod needed), same size, and puts its mtime back: only the ctime shows it.
    target = cached_dataset / "sub" / "a.bin"
    sealed = target.lstat()
    with target.open("r+b") as f:
        f.write(b"X")
    os.utime(target, ns=(sealed.st_atime_ns, sealed.st_mtime_ns))
    assert target.lstat().st_ctime_ns != sealed.st_ctime_ns
    obj = SourceObject("a.bin", len(DATA), '"e"')
    with new_dataset(tmp_path) as dataset:
        assert take_cached(dataset, obj, copy_of(cached_dataset), (TakeMethod.LINK,), sealed=sealed) is None
        assert not (dataset.path / "a.bin").exists(), "nothing at the final name"
        assert leftovers(dataset) == [], "no temporary file left"


def test_a_copy_is_hashed_even_of_a_file_as_sealed(cached_dataset: Path, tmp_path: Path) -> None:
    sealed = (cached_dataset / "sub" / "a.bin").lstat()
    obj = SourceObject("a.bin", len(DATA), '"e"')
    wrong = copy_of(cached_dataset, digest="0" * 64)  # a manifest the bytes do not match
    with new_dataset(tmp_path) as dataset:
        assert take_cached(dataset, obj, wrong, (TakeMethod.COPY,), sealed=sealed) is None
        assert leftovers(dataset) == []
