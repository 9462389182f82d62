"""Tests for transfer.plan.FileAsDirectoryGuard: a key under another key, checked against a
brute-force reference over sorted listings."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.errors import UnsafeKeyError
from stagegate.transfer.plan import FileAsDirectoryGuard


def first_nested(keys: list[str]) -> str | None:
    """The first key (in listing order) that lies under an earlier one, by brute force."""
    for i, key in enumerate(keys):
        if any(key.startswith(earlier + "/") for earlier in keys[:i]):
            return key
    return None


def guard_finds(keys: list[str]) -> str | None:
    guard = FileAsDirectoryGuard()
    for key in keys:
        try:
            guard.add(key)
        except UnsafeKeyError as exc:
            return exc.key
    return None


def guard_finds_raising(keys: list[str]) -> None:
    guard = FileAsDirectoryGuard()
    for key in keys:
        guard.add(key)


def test_examples() -> None:
    assert guard_finds(["a", "a-c", "a.txt", "a/b"]) == "a/b"
    assert guard_finds(["a", "ab", "ab/c"]) == "ab/c"
    assert guard_finds(["a/b", "a/b/c/d"]) == "a/b/c/d"
    assert guard_finds(["a-c", "a/b", "ab"]) is None
    with pytest.raises(UnsafeKeyError, match="'a' is a file, so it cannot also be a directory"):
        guard_finds_raising(["a", "a/b"])


segments = st.sampled_from(["a", "b", "a-c", "a.b", "ab", " "])
keys = st.lists(segments, min_size=1, max_size=4).map("/".join)


@given(st.lists(keys, max_size=30, unique=True).map(sorted))
def test_matches_brute_force_on_sorted_listings(listing: list[str]) -> None:
    assert guard_finds(listing) == first_nested(listing)


def test_memory_is_the_chain_of_prefixes_not_the_listing() -> None:
    guard = FileAsDirectoryGuard()
    for i in range(10_000):
        guard.add(f"k{i:05d}")
    assert len(guard._chain) == 1
