"""transfer.dir_cache: one directory descriptor per thread, reused for its next file."""

import os
import threading
from pathlib import Path

import pytest

from stagegate.transfer.dir_cache import LastDirectories, Segments


class Opener:
    """Opens real directories below ``root`` and counts the opens."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[Segments] = []

    def __call__(self, segments: Segments) -> int:
        self.opened.append(segments)
        return os.open(self.root.joinpath(*segments), os.O_RDONLY | os.O_DIRECTORY)


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_the_same_directory_is_opened_once_per_run_of_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    opener = Opener(tmp_path)
    cache = LastDirectories()
    first = cache.get(("a",), opener)
    assert cache.get(("a",), opener) == first
    other = cache.get(("b",), opener)
    assert not is_open(first) or first == other  # the old one was closed (its number may be reused)
    assert opener.opened == [("a",), ("b",)]
    cache.close()
    assert not is_open(other)


def test_each_thread_holds_its_own_and_close_closes_them_all(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    cache = LastDirectories()
    opener = Opener(tmp_path)
    got: dict[str, int] = {}
    both = threading.Barrier(2)  # alive at once: a finished thread's ident may be reused

    def use(name: str) -> None:
        got[name] = cache.get((name,), opener)
        both.wait()

    threads = [threading.Thread(target=use, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got["a"] != got["b"]
    assert os.fstat(got["a"]).st_ino == (tmp_path / "a").stat().st_ino
    assert os.fstat(got["b"]).st_ino == (tmp_path / "b").stat().st_ino
    cache.close()
    assert not is_open(got["a"]) and not is_open(got["b"])


def test_a_closed_cache_opens_nothing_more(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    cache = LastDirectories()
    opener = Opener(tmp_path)
    cache.close()
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match="closed"):
        cache.get(("a",), opener)
    assert len(os.listdir("/proc/self/fd")) == before  # what it opened meanwhile went again
