"""The destination is a root nothing escapes: symlinks planted in it are refused or replaced,
never followed, and a path that cannot be made gives a clear error."""

import contextlib
import logging
import os
from pathlib import Path

import pytest

from integration.helpers import (
    assert_staged,
    data_files,
    is_ready,
    small_config,
    snapshot,
    temp_files,
    write_tree,
)
from stagegate.errors import StagegateError
from stagegate.transfer import open_source, stage
from stagegate.transfer.errors import UnsafeDestinationError
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.sink import DatasetDir

pytestmark = pytest.mark.integration

FILES = {
    "a/file": b"would land outside",
    "a/deeper/file2": b"also",
    "b.txt": b"bee",
    "c/d.txt": b"sea dee",
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", FILES)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the destination holding things that must survive."""
    out = tmp_path / "outside"
    write_tree(out, {"keep.txt": b"precious", "sub/keep2.txt": b"precious too"})
    return out


def earlier_staging(dest: Path) -> Path:
    """``dest`` as an earlier staging left it (its state dir), so stagegate stages into it again
    even though something is planted there: a directory holding files but no state is refused
    before any of the checks below (test_destination_ownership.py)."""
    dest.mkdir(parents=True)
    state_dir_of(dest).mkdir()
    return dest


def _stage(source: Path, dest: Path):  # type: ignore[no-untyped-def]
    return stage(open_source(str(source)), dest, small_config(concurrency=2))


def _stage_expecting_failure(source: Path, dest: Path) -> StagegateError:
    with pytest.raises(StagegateError) as info:
        _stage(source, dest)
    return info.value


def _assert_refused_as_symlink(error: StagegateError) -> None:
    """A planted symlink is the destination's problem, not the key's: it must be reported
    as UnsafeDestinationError (the CLI maps it to 'transfer failed', exit 1), naming the
    symlink, not as an unsafe key (bad input, exit 2)."""
    assert isinstance(error, UnsafeDestinationError), f"{type(error).__name__}: {error}"
    assert "symlink" in str(error)


def test_symlinked_directory_in_destination_is_refused(source, outside, tmp_path):
    dest = earlier_staging(tmp_path / "dest")
    (dest / "a").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    error = _stage_expecting_failure(source, dest)

    assert snapshot(outside) == before, "something was written through the symlink"
    assert (dest / "a").is_symlink()
    assert not is_ready(dest)
    assert temp_files(dest) == []
    _assert_refused_as_symlink(error)


def test_symlinked_directory_deeper_in_destination_is_refused(source, outside, tmp_path):
    dest = earlier_staging(tmp_path / "dest")
    (dest / "a").mkdir()
    (dest / "a" / "deeper").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    error = _stage_expecting_failure(source, dest)
    assert snapshot(outside) == before
    assert not is_ready(dest)
    _assert_refused_as_symlink(error)


def test_symlink_at_a_file_path_is_replaced_not_followed(source, outside, tmp_path):
    dest = earlier_staging(tmp_path / "dest")
    (dest / "c").mkdir()
    (dest / "c" / "d.txt").symlink_to(outside / "keep.txt")
    before = snapshot(outside)
    _stage(source, dest)
    assert snapshot(outside) == before
    assert not (dest / "c" / "d.txt").is_symlink()
    assert_staged(dest, FILES)


def test_file_where_a_directory_should_be_gives_a_clear_error(source, tmp_path):
    dest = earlier_staging(tmp_path / "dest")
    (dest / "a").write_bytes(b"i am a file")
    with pytest.raises(StagegateError, match="not a directory") as info:
        _stage(source, dest)
    assert str(dest / "a") in str(info.value)  # names the path in the way
    assert (dest / "a").read_bytes() == b"i am a file"
    assert not is_ready(dest)
    assert temp_files(dest) == []


def test_directory_where_a_file_should_be_gives_a_clear_error(source, tmp_path):
    dest = earlier_staging(tmp_path / "dest")
    (dest / "b.txt" / "inner").mkdir(parents=True)
    with pytest.raises(StagegateError, match="directory") as info:
        _stage(source, dest)
    assert "b.txt" in str(info.value)
    assert (dest / "b.txt" / "inner").is_dir()
    assert not is_ready(dest)
    assert temp_files(dest) == []


def test_destination_that_is_a_file_gives_a_clear_error(source, tmp_path):
    dest = tmp_path / "dest"
    dest.write_bytes(b"not a directory")
    with pytest.raises(StagegateError, match="not a directory"):
        _stage(source, dest)
    assert dest.read_bytes() == b"not a directory"


def test_symlinked_state_dir_is_refused(source, outside, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    state_dir_of(dest).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    error = _stage_expecting_failure(source, dest)
    assert snapshot(outside) == before
    assert data_files(dest) == {}
    _assert_refused_as_symlink(error)


@pytest.mark.parametrize("name", ["tmp", "batches", "journal"])
def test_symlinked_directory_inside_the_state_dir_is_not_followed(source, outside, tmp_path, name):
    """A symlink at the state dir's tmp/, batches/ or an older stagegate's journal/ must not
    make stagegate write to, or delete from, the directory it points at."""
    dest = tmp_path / "dest"
    state_dir_of(dest).mkdir(parents=True)
    (state_dir_of(dest) / name).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    with contextlib.suppress(Exception):  # refusing (in any way) is fine; following is not
        _stage(source, dest)
    assert snapshot(outside) == before, f"{name} symlink was followed"


@pytest.mark.parametrize("name", ["plan.jsonl", "manifest.jsonl", "READY"])
def test_symlinked_state_file_is_not_followed(source, outside, tmp_path, name):
    """A symlink at a state file's name must not make stagegate overwrite its target."""
    dest = tmp_path / "dest"
    state_dir_of(dest).mkdir(parents=True)
    (state_dir_of(dest) / name).symlink_to(outside / "keep.txt")
    before = snapshot(outside)
    with contextlib.suppress(Exception):  # refusing (in any way) is fine; following is not
        _stage(source, dest)
    assert snapshot(outside) == before, f"{name} symlink was followed"
    assert (outside / "keep.txt").read_bytes() == b"precious"


def test_destination_root_may_itself_be_a_symlink(source, tmp_path):
    """The operator's own choice (/nvme -> /mnt/nvme0) is honoured."""
    real = tmp_path / "real-dest"
    real.mkdir()
    link = tmp_path / "dest-link"
    link.symlink_to(real, target_is_directory=True)
    _stage(source, link)
    # The state lies beside the name the dataset was staged as (the link), the bytes in its target.
    assert_staged(link, FILES)
    assert data_files(real) == FILES
    assert os.path.islink(link)


def test_corrupt_manifest_from_an_earlier_run_does_not_crash(source, tmp_path, caplog):
    """A manifest that cannot be parsed (truncated by a full disk, edited by hand) vouches for
    nothing: the rerun warns, naming it, recopies every file, and writes a whole manifest."""
    dest = tmp_path / "dest"
    _stage(source, dest)
    manifest = state_dir_of(dest) / "manifest.jsonl"
    manifest.write_bytes(manifest.read_bytes()[:25])  # cut mid-record
    with caplog.at_level(logging.WARNING):
        again = _stage(source, dest)
    assert (again.files_copied, again.files_skipped) == (len(FILES), 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(manifest) in w and "damaged" in w for w in warnings), warnings
    assert_staged(dest, FILES)  # ready, exactly the source's files, every manifest BLAKE3 right


def test_a_mount_point_as_the_destination_is_refused_before_anything_is_made() -> None:
    """The state lies in the destination's parent; across a mount its renames into the dataset
    could not be atomic. /proc is a mount point on every Linux, so nothing of it is touched."""
    with pytest.raises(UnsafeDestinationError, match="another filesystem") as refused:
        DatasetDir(Path("/proc"))
    assert "stage into a directory below it" in str(refused.value)
    assert not state_dir_of("/proc").exists()


def test_an_older_layouts_state_is_not_moved_onto_a_planted_symlink(source, outside, tmp_path):
    dest = tmp_path / "dest"
    (dest / ".stagegate").mkdir(parents=True)  # as an older stagegate left it
    state_dir_of(dest).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    error = _stage_expecting_failure(source, dest)
    assert snapshot(outside) == before
    _assert_refused_as_symlink(error)
