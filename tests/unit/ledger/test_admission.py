"""Admission to a node's NVMe: what fits, what is evicted, what is refused."""

from datetime import UTC, datetime, timedelta

import pytest

from stagegate.ledger.admission import CachedDataset, NoRoomError, choose_evictions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def held(
    digest: str, size: int, *, state: str = "ready", pinned: bool = False, age: int = 0
) -> CachedDataset:
    return CachedDataset(digest, size, state, pinned, T0 - timedelta(hours=age))


def test_what_fits_in_free_space_evicts_nothing() -> None:
    assert choose_evictions("n", 100, [held("a", 40)], 60) == []


def test_least_recently_used_unpinned_go_first_and_only_as_many_as_needed() -> None:
    cache = [held("new", 30, age=1), held("old", 30, age=5), held("older", 30, age=9)]
    assert choose_evictions("n", 100, cache, 40) == ["older"]
    assert choose_evictions("n", 100, cache, 70) == ["older", "old"]


def test_pinned_writing_and_already_evicting_datasets_are_never_chosen() -> None:
    cache = [
        held("pinned", 30, pinned=True, age=9),
        held("writing", 20, state="writing", age=8),
        held("going", 10, state="evicting", age=7),
        held("free", 30, age=1),
    ]
    assert choose_evictions("n", 100, cache, 40) == ["free"]


def test_what_cannot_fit_is_refused_with_the_reason() -> None:
    cache = [held("pinned", 60, pinned=True), held("free", 20)]
    with pytest.raises(NoRoomError) as refused:
        choose_evictions("gpu-7", 100, cache, 50)
    message = str(refused.value)
    assert "gpu-7" in message
    assert "cannot hold 50 B:" in message and "60 B pinned" in message


def test_a_dataset_bigger_than_the_node_is_refused_even_on_an_empty_node() -> None:
    with pytest.raises(NoRoomError):
        choose_evictions("n", 100, [], 101)


def test_files_shared_between_datasets_count_once_and_free_only_when_no_other_holds_them() -> None:
    # v1 (100) and v2 (100) share 90 bytes of files: the disk holds 110.
    v1 = CachedDataset("v1", 100, "ready", False, T0 - timedelta(hours=5), unique_bytes=100, sole_bytes=10)
    v2 = CachedDataset("v2", 100, "ready", True, T0, unique_bytes=10, sole_bytes=10)
    assert choose_evictions("n", 200, [v1, v2], 90) == [], "110 used, 90 free"
    # Evicting v1 gives back only its own 10 bytes: v2 still holds the rest.
    assert choose_evictions("n", 200, [v1, v2], 100) == ["v1"]
    with pytest.raises(NoRoomError):
        choose_evictions("n", 200, [v1, v2], 101)
