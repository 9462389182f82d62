"""Shared bytes counted once (workers.cache_takes.shared_counts): pure over snapshots."""

import os
import stat

from stagegate.workers.cache_takes import shared_counts


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
