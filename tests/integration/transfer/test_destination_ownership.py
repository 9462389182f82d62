"""A staging writes only into a directory that is new, empty, or an earlier staging's, and
holds that directory's lock for as long as it runs."""

import fcntl
import os
from pathlib import Path

import pytest

from integration.helpers import assert_staged, small_config, snapshot, write_tree
from stagegate.errors import InvalidInputError
from stagegate.transfer import open_source, stage
from stagegate.transfer.errors import DestinationBusyError, DestinationNotEmptyError, UnsafeDestinationError
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.sink import LOCK_FILE, DatasetDir

pytestmark = pytest.mark.integration

FILES = {".bashrc": b"alias rm='rm -rf /'\n", "data/x.bin": b"x" * 100}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", FILES)


def _stage(source: Path, dest: str | Path):  # type: ignore[no-untyped-def]
    return stage(open_source(str(source)), dest, small_config(concurrency=2))


def test_a_directory_holding_someone_elses_files_is_refused_untouched(source: Path, tmp_path: Path) -> None:
    home = write_tree(tmp_path / "home", {".bashrc": b"export PS1='$ '\n", "notes.txt": b"mine"})
    before = snapshot(home)
    with pytest.raises(DestinationNotEmptyError, match="choose an empty or new directory") as refused:
        _stage(source, home)
    assert str(home) in str(refused.value)
    assert snapshot(home) == before, "not a byte written, not even the state directory"


def test_a_single_hidden_file_is_enough_to_refuse(source: Path, tmp_path: Path) -> None:
    dest = write_tree(tmp_path / "dest", {".keep": b""})
    with pytest.raises(DestinationNotEmptyError):
        _stage(source, dest)
    assert not state_dir_of(dest).exists()


def test_new_empty_and_earlier_staging_directories_are_staged_into(source: Path, tmp_path: Path) -> None:
    new = tmp_path / "new" / "deeper"
    empty = tmp_path / "empty"
    empty.mkdir()
    for dest in (new, empty):
        _stage(source, dest)
        assert_staged(dest, FILES)
    result = _stage(source, empty)  # a rerun: the directory holds our state now
    assert result.files_skipped == len(FILES)
    assert_staged(empty, FILES)


def test_an_empty_destination_name_is_refused(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = write_tree(tmp_path / "cwd", {".bashrc": b"mine\n"})
    monkeypatch.chdir(cwd)
    with pytest.raises(InvalidInputError, match="destination is empty"):
        _stage(source, "")
    assert (cwd / ".bashrc").read_bytes() == b"mine\n"
    assert not state_dir_of(cwd).exists()


def test_a_staging_fails_at_once_while_another_holds_the_lock(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with DatasetDir(dest) as holder:
        holder.lock_exclusive()
        assert (state_dir_of(dest) / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(DestinationBusyError, match=f"pid {os.getpid()}") as busy:
            _stage(source, dest)
        assert busy.value.pid == os.getpid()
        assert not (dest / "data").exists(), "the refused staging wrote nothing"
    _stage(source, dest)  # released with the directory: the next staging goes ahead
    assert_staged(dest, FILES)


def test_the_lock_is_held_for_the_whole_staging(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    seen: list[bool] = []

    def during(_plan: object) -> None:
        fd = os.open(state_dir_of(dest) / LOCK_FILE, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            seen.append(True)
        else:
            seen.append(False)
        finally:
            os.close(fd)

    stage(open_source(str(source)), dest, small_config(concurrency=2), on_plan=during)
    assert seen == [True]


def test_a_planted_lock_that_is_not_a_regular_file_is_refused(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    state_dir_of(dest).mkdir(parents=True)
    os.mkfifo(state_dir_of(dest) / LOCK_FILE)  # opened blocking, a FIFO would hang the staging
    with pytest.raises(UnsafeDestinationError, match="not a regular file"):
        _stage(source, dest)
