"""The directories a POSIX source and a dataset keep open between files are closed with them:
a long-lived node worker opens a source and a dataset per task and must not gather descriptors."""

import os
import threading
from pathlib import Path

from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.sources.local import LocalSource


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_tree(root: Path) -> None:
    for directory in ("a", "b/c"):
        (root / directory).mkdir(parents=True)
        for i in range(3):
            (root / directory / f"f{i}").write_bytes(b"x" * i)


def read_all(source: LocalSource) -> None:
    for obj in source.list():
        reader = source.open(obj)
        try:
            reader.read(1 << 20)
        finally:
            reader.close()


def test_a_source_dropped_closes_the_directories_its_threads_kept(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    before = open_descriptors()
    source = LocalSource(tmp_path / "src")
    threads = [threading.Thread(target=read_all, args=(source,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open_descriptors() > before  # each thread's last directory, kept for its next file
    del source
    assert open_descriptors() == before


def test_a_dataset_closed_closes_the_directories_its_commits_kept(tmp_path: Path) -> None:
    before = open_descriptors()
    with DatasetDir(tmp_path / "dst") as dataset:
        for parts in (("a", "f0"), ("a", "f1"), ("b", "c", "f0")):
            temp = dataset.create_temp(1)
            temp.write(b"x")
            dataset.commit(temp, parts)
    assert open_descriptors() == before
    assert sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("f*")) == [
        "a/f0",
        "a/f1",
        "b/c/f0",
    ]
