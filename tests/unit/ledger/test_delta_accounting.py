"""Delta staging's arithmetic (ledger.delta_accounting): room only for what a new dataset adds,
the datasets it takes from kept, and its takes counted as from the cache however made."""

from datetime import UTC, datetime, timedelta

import pytest

from stagegate.ledger.admission import CachedDataset, NoRoomError, choose_evictions
from stagegate.ledger.delta_accounting import bytes_from_cache, delta_admission, kept_for_takes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def held(
    digest: str, size: int, *, state: str = "ready", pinned: bool = False, age: int = 0
) -> CachedDataset:
    return CachedDataset(digest, size, state, pinned, T0 - timedelta(hours=age))


def test_a_v2_on_a_full_node_needs_room_only_for_its_changed_files_and_keeps_v1() -> None:
    # Capacity 90: v1 (80, released, the only thing to evict) and v2 (80, of which v1 holds 72).
    node = [held("v1", 80, age=1)]
    delta = delta_admission(80, {"v1": 72}, node)
    assert (delta.adds, delta.takes_from) == (8, ("v1",))
    assert choose_evictions("n", 90, kept_for_takes(node, set(delta.takes_from)), delta.adds) == []
    # Without the delta, v2 at full size would have evicted the very dataset it takes from.
    assert choose_evictions("n", 90, node, 80) == ["v1"]


def test_a_dataset_it_takes_from_is_never_evicted_for_it_even_when_room_is_short() -> None:
    node = [held("v1", 80, age=1), held("old", 5, age=9)]
    delta = delta_admission(80, {"v1": 70}, node)
    kept = kept_for_takes(node, set(delta.takes_from))
    assert choose_evictions("n", 90, kept, delta.adds) == ["old"]
    with pytest.raises(NoRoomError):
        choose_evictions("n", 90, kept, delta.adds + 10)


def test_only_datasets_still_ready_count_as_holding_anything() -> None:
    node = [held("v1", 80, state="evicting"), held("v0", 40)]
    delta = delta_admission(100, {"v1": 70, "v0": 20, "gone": 5}, node)
    assert (delta.adds, delta.takes_from) == (80, ("v0",))


def test_no_held_bytes_admits_the_full_size_and_keeps_nothing() -> None:
    delta = delta_admission(50, {}, [held("v1", 80)])
    assert (delta.adds, delta.takes_from) == (50, ())
    assert kept_for_takes([held("v1", 80)], set()) == [held("v1", 80)]


@pytest.mark.parametrize(
    ("total", "unique", "taken", "expected"),
    [
        (100, None, 90, 90),  # reflinked or copied: no inode shared, counted from its batches
        (100, 10, 90, 90),  # linked: the batches' count and the disk's agree
        (100, 10, None, 90),  # recorded before batches counted takes: all but its unique bytes
        (100, None, None, 0),  # nothing taken
        (100, None, 0, 0),
        (100, None, 120, 100),  # never more than the dataset
    ],
)
def test_a_take_counts_as_from_the_cache_however_it_was_made(
    total: int, unique: int | None, taken: int | None, expected: int
) -> None:
    assert bytes_from_cache(total, unique, taken) == expected
