"""Tests for transfer.parts: ranged parts and weighted batches."""

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.parts import (
    MAX_PARTS,
    MIN_PART_SIZE,
    S3_PART_RULE,
    Part,
    PartRule,
    batched_by_weight,
    part_size_by_need,
    part_size_for,
    part_size_under,
    split_parts,
)

MiB = 1 << 20


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --- split_parts ----------------------------------------------------------------------


@settings(max_examples=200)
@given(st.integers(0, 5_000), st.integers(1, 6_000))
def test_split_parts_covers_the_object_exactly(size: int, part_size: int) -> None:
    parts = split_parts(size, part_size)
    assert len(parts) == ceil_div(size, part_size)
    assert [p.index for p in parts] == list(range(len(parts)))
    offset = 0
    for part in parts:
        assert part.offset == offset
        assert 1 <= part.length <= part_size
        assert part.end == part.offset + part.length
        offset = part.end
    assert offset == size
    # only the last part may be short
    assert all(p.length == part_size for p in parts[:-1])


@given(st.integers(1, 10**12), st.integers(0, 2_000), st.data())
def test_split_parts_of_large_objects(part_size: int, full_parts: int, data: st.DataObject) -> None:
    remainder = data.draw(st.integers(0, part_size - 1), label="remainder")
    size = full_parts * part_size + remainder
    parts = split_parts(size, part_size)
    assert len(parts) == full_parts + (1 if remainder else 0)
    assert sum(p.length for p in parts) == size
    if parts:
        assert parts[-1].end == size
        assert parts[-1].length == (remainder or part_size)


def test_split_parts_examples() -> None:
    assert split_parts(0, 5) == []
    assert split_parts(5, 5) == [Part(0, 0, 5)]
    assert split_parts(11, 5) == [Part(0, 0, 5), Part(1, 5, 5), Part(2, 10, 1)]
    assert split_parts(1, 1 << 30) == [Part(0, 0, 1)]


@pytest.mark.parametrize(("size", "part_size"), [(-1, 5), (10, 0), (10, -3), (0, 0)])
def test_split_parts_rejects_invalid_arguments(size: int, part_size: int) -> None:
    with pytest.raises(ValueError):
        split_parts(size, part_size)


# --- part_size_for --------------------------------------------------------------------


@settings(max_examples=300)
@given(
    size=st.integers(0, 10**16),
    preferred=st.integers(1, 1 << 30),
    max_parts=st.integers(1, MAX_PARTS),
)
def test_part_size_for_respects_preference_and_part_limit(size: int, preferred: int, max_parts: int) -> None:
    chosen = part_size_for(size, preferred, max_parts)
    assert chosen >= preferred
    assert ceil_div(size, chosen) <= max_parts
    if chosen != preferred:
        assert chosen % MIN_PART_SIZE == 0
        if chosen > MIN_PART_SIZE:
            # grown just enough: one MiB less would need too many parts
            assert ceil_div(size, chosen - MIN_PART_SIZE) > max_parts


def test_part_size_for_examples() -> None:
    assert part_size_for(0, 8 * MiB) == 8 * MiB
    assert part_size_for(8 * MiB * MAX_PARTS, 8 * MiB) == 8 * MiB
    # one byte more than fits: grows to the next whole MiB
    assert part_size_for(8 * MiB * MAX_PARTS + 1, 8 * MiB) == 9 * MiB
    assert part_size_for(5 * 2**40, 8 * MiB) == 525 * MiB  # 5 TiB: S3's maximum object
    assert part_size_for(100, 1, max_parts=10) == MiB


def test_part_size_for_rejects_non_positive_preference() -> None:
    with pytest.raises(ValueError):
        part_size_for(10, 0)
    with pytest.raises(ValueError):
        part_size_for(10, -1)


# --- batched_by_weight ----------------------------------------------------------------


@settings(max_examples=300)
@given(
    weights=st.lists(st.integers(0, 100), max_size=60),
    max_weight=st.integers(1, 250),
    max_items=st.integers(1, 10),
)
def test_batches_preserve_order_and_respect_limits(
    weights: list[int], max_weight: int, max_items: int
) -> None:
    items = list(enumerate(weights))  # distinct items, so order is observable
    batches = list(batched_by_weight(items, lambda item: item[1], max_weight, max_items))
    assert [item for batch in batches for item in batch] == items
    for batch in batches:
        assert batch
        assert len(batch) <= max_items
        weight = sum(w for _, w in batch)
        assert weight <= max_weight or len(batch) == 1


@settings(max_examples=200)
@given(
    weights=st.lists(st.integers(0, 100), min_size=1, max_size=60),
    max_weight=st.integers(1, 250),
    max_items=st.integers(1, 10),
)
def test_batches_are_greedy(weights: list[int], max_weight: int, max_items: int) -> None:
    """A batch is closed only when the next item would break a limit."""
    batches = list(batched_by_weight(weights, lambda w: w, max_weight, max_items))
    for batch, following in itertools.pairwise(batches):
        full = len(batch) >= max_items
        too_heavy = sum(batch) + following[0] > max_weight
        assert full or too_heavy


def test_batches_examples() -> None:
    def weight(w: int) -> int:
        return w

    assert list(batched_by_weight([], weight, 10, 3)) == []
    assert list(batched_by_weight([1, 2, 3, 4], weight, 100, 2)) == [[1, 2], [3, 4]]
    assert list(batched_by_weight([6, 5, 4, 20, 1], weight, 10, 10)) == [[6], [5, 4], [20], [1]]


def test_batches_consume_a_generator_lazily() -> None:
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            pulled.append(i)
            yield i

    first = next(batched_by_weight(source(), lambda _: 1, 1000, 3))
    assert first == [0, 1, 2]
    assert len(pulled) <= 4


@pytest.mark.parametrize(("max_weight", "max_items"), [(0, 1), (1, 0), (-5, 3)])
def test_batches_reject_invalid_limits(max_weight: int, max_items: int) -> None:
    with pytest.raises(ValueError):
        list(batched_by_weight([1], lambda w: w, max_weight, max_items))


@settings(max_examples=300)
@given(size=st.integers(0, 5 * 2**40), preferred=st.integers(1, 1 << 30))
def test_s3_parts_are_at_least_5_mib_and_at_most_10000(size: int, preferred: int) -> None:
    """The one part rule under S3's limits: what an S3 writer is given always uploads."""
    chosen = part_size_under(S3_PART_RULE, size, preferred)
    assert chosen >= max(preferred, 5 * MiB)
    assert ceil_div(size, chosen) <= 10_000


def test_the_local_rule_keeps_small_parts() -> None:
    assert part_size_under(PartRule(), 10 * MiB, MiB) == MiB
    assert part_size_under(S3_PART_RULE, 10 * MiB, MiB) == 5 * MiB


# --- part_size_by_need ----------------------------------------------------------------


def test_four_big_objects_with_sixteen_connections_get_four_parts_each():
    size = part_size_by_need(512 * MiB, streams=4, concurrency=16, rule=PartRule(), floor=8 * MiB)
    assert len(split_parts(512 * MiB, size)) == 4


def test_one_big_object_gets_every_connection():
    size = part_size_by_need(512 * MiB, streams=1, concurrency=16, rule=PartRule(), floor=8 * MiB)
    assert len(split_parts(512 * MiB, size)) == 16


def test_more_objects_than_connections_read_each_whole_down_to_the_floor():
    # 32 objects share 16 connections: one part each would do, but the floor still cuts
    size = part_size_by_need(512 * MiB, streams=32, concurrency=16, rule=PartRule(), floor=64 * MiB)
    assert size == 512 * MiB
    size = part_size_by_need(512 * MiB, streams=4, concurrency=64, rule=PartRule(), floor=64 * MiB)
    assert size == 64 * MiB  # 16 parts wanted; the 64 MiB floor allows 8


def test_the_s3_writer_minimum_and_part_count_still_bind():
    small = part_size_by_need(12 * MiB, streams=1, concurrency=16, rule=S3_PART_RULE, floor=1 * MiB)
    assert small == 5 * MiB  # S3 refuses parts under 5 MiB
    huge = 100_000 * MiB
    size = part_size_by_need(huge, streams=1, concurrency=2, rule=PartRule(max_parts=10), floor=MiB)
    assert len(split_parts(huge, size)) <= 10


@given(
    size=st.integers(0, 1 << 44),
    streams=st.integers(1, 64),
    concurrency=st.integers(1, 1024),
    floor=st.integers(1, 256 * MiB),
    rule=st.sampled_from([PartRule(), S3_PART_RULE, PartRule(min_size=MiB, max_parts=7)]),
)
@settings(max_examples=300, deadline=None)
def test_parts_by_need_never_exceed_the_need_or_the_rule(size, streams, concurrency, floor, rule):
    part = part_size_by_need(size, streams, concurrency, rule, floor)
    count = len(split_parts(size, part))
    assert count <= rule.max_parts
    assert part >= max(floor, rule.min_size)
    assert count <= ceil_div(concurrency, streams)  # never split further than the share needs
    assert part % MIN_PART_SIZE == 0 or part == max(floor, rule.min_size)


@pytest.mark.parametrize("bad", [dict(streams=0), dict(concurrency=0), dict(floor=0), dict(size=-1)])
def test_parts_by_need_refuses_nonsense(bad):
    args = dict(size=MiB, streams=1, concurrency=1, rule=PartRule(), floor=MiB) | bad
    with pytest.raises(ValueError):
        part_size_by_need(**args)
