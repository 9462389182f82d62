"""Delta staging's bookkeeping on a node (workers.cache_takes): shared bytes counted once (pure
over snapshots), and fingerprints kept true around links (real directories, the ledger faked)."""

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from stagegate.ledger.cached_files import CachedDatasetOnNode
from stagegate.transfer.sealed import fingerprint, seal
from stagegate.workers.cache_takes import SharedFiles, shared_counts


def entry(key: str, inode: int, size: int) -> tuple[str, os.stat_result]:
    return key, os.stat_result((stat.S_IFREG | 0o444, inode, 1, 1, 0, 0, size, 0, 0, 0))


def root() -> tuple[str, os.stat_result]:
    return "", os.stat_result((stat.S_IFDIR | 0o555, 1, 1, 2, 0, 0, 4096, 0, 0, 0))


def test_the_oldest_holder_counts_a_shared_file_and_only_a_sole_holder_frees_it() -> None:
    v1 = [root(), entry("a", 10, 100), entry("b", 11, 50)]
    v2 = [root(), entry("a", 10, 100), entry("c", 12, 7)]  # "a" linked from v1
    lone = [root(), entry("x", 20, 3)]
    counts = shared_counts([("v1", v1), ("v2", v2), ("lone", lone)])
    assert counts == {"v1": (150, 50), "v2": (7, 7), "lone": None}
    # v1 evicted: v2 holds "a" alone now and counts it whole.
    assert shared_counts([("v2", v2), ("lone", lone)]) == {"v2": None, "lone": None}


def test_two_names_of_one_file_in_one_dataset_are_one_file() -> None:
    one = [root(), entry("a", 10, 100), entry("a-again", 10, 100)]
    assert shared_counts([("d", one)]) == {"d": None}


class FakeCachedFiles:
    """The two ledger calls SharedFiles makes, over a dict (the ledger's side is tested with
    the service)."""

    def __init__(self, datasets: dict[str, tuple[Path, str]]) -> None:
        self.datasets = datasets

    def ready_on(self, node: str) -> list[CachedDatasetOnNode]:
        return [
            CachedDatasetOnNode(d, str(p), fp, 0, datetime(2026, 1, 1, tzinfo=UTC))
            for d, (p, fp) in self.datasets.items()
        ]

    def refingerprint(self, node: str, digest: str, was: str, now: str) -> bool:
        path, fp = self.datasets[digest]
        if fp != was:
            return False
        self.datasets[digest] = (path, now)
        return True


def sealed_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    seal(root)
    return root


def test_linking_from_a_checked_dataset_keeps_its_fingerprint_true(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    v1 = sealed_tree(datasets / "v1", {"a": b"a" * 10, "b": b"b" * 10})
    ledger = FakeCachedFiles({"v1": (v1, fingerprint(v1))})
    guard = SharedFiles(ledger, "n", datasets)  # type: ignore[arg-type]
    assert set(guard.trusted) == {"v1"}
    os.link(v1 / "a", tmp_path / "v2-a")  # the take
    guard.touched.add((v1 / "a").stat().st_ino)
    guard.refresh()
    assert ledger.datasets["v1"][1] == fingerprint(v1), "its new fingerprint is on record"


def test_an_altered_dataset_is_neither_trusted_nor_blessed(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    v1 = sealed_tree(datasets / "v1", {"a": b"a" * 10, "b": b"b" * 10})
    recorded = fingerprint(v1)
    (v1 / "b").chmod(0o644)  # altered since it was sealed
    ledger = FakeCachedFiles({"v1": (v1, recorded)})
    assert SharedFiles(ledger, "n", datasets).trusted == {}  # type: ignore[arg-type]

    # Checked, then altered elsewhere while a file of it was linked: the record stays as it was.
    (v1 / "b").chmod(0o444)
    ledger.datasets["v1"] = (v1, fingerprint(v1))
    guard = SharedFiles(ledger, "n", datasets)  # type: ignore[arg-type]
    before = ledger.datasets["v1"][1]
    os.link(v1 / "a", tmp_path / "v2-a")
    guard.touched.add((v1 / "a").stat().st_ino)
    (v1 / "b").chmod(0o444)  # a chmod moves b's ctime: not a link of a touched inode
    guard.refresh()
    assert ledger.datasets["v1"][1] == before, "not re-blessed: its next check fails"
