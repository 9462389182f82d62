"""Pure arithmetic: how a big object splits into ranged parts, how objects group into batches."""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

MIN_PART_SIZE = 1 << 20  # parts stay whole MiB, so ranges stay page aligned
MAX_PARTS = 10_000


@dataclass(frozen=True, slots=True)
class PartRule:
    """The part sizes a writer accepts: S3 wants parts of at least 5 MiB (all but the last)
    and at most 10,000 of them; a local file takes any size."""

    min_size: int = MIN_PART_SIZE
    max_parts: int = MAX_PARTS


S3_PART_RULE = PartRule(min_size=5 << 20, max_parts=10_000)


@dataclass(frozen=True, slots=True)
class Part:
    """A byte range ``[offset, offset + length)`` of one object."""

    index: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def part_size_for(size: int, preferred: int, max_parts: int = MAX_PARTS, min_size: int = 1) -> int:
    """The part size to use: ``preferred`` (raised to ``min_size``), grown just enough to stay
    within ``max_parts``."""
    if preferred < 1 or max_parts < 1 or min_size < 1:
        raise ValueError("part size and part count must be positive")
    preferred = max(preferred, min_size)
    if size <= preferred * max_parts:
        return preferred
    # ceil(size / max_parts), rounded up to a whole MiB so ranges stay page aligned
    needed = -(-size // max_parts)
    return -(-needed // MIN_PART_SIZE) * MIN_PART_SIZE


def part_size_under(rule: PartRule, size: int, preferred: int) -> int:
    """:func:`part_size_for` under a writer's ``rule``."""
    return part_size_for(size, preferred, rule.max_parts, rule.min_size)


def part_size_by_need(size: int, streams: int, concurrency: int, rule: PartRule, floor: int) -> int:
    """The part size for a big object read in ranged parts: split only as far as the
    concurrency budget needs. ``concurrency`` connections shared by ``streams`` big objects
    in flight give each about ``ceil(concurrency / streams)`` parts (4 objects, 16
    connections: 4 parts each; one object: 16), in whole MiB, never below ``floor`` (each
    part costs a request and a stream set-up) nor the writer's minimum, and never more than
    the writer's part count allows. The same rule for every source and writer."""
    if size < 0 or streams < 1 or concurrency < 1 or floor < 1:
        raise ValueError("size must not be negative; streams, concurrency and floor must be positive")
    wanted = -(-concurrency // streams)
    each = -(-size // wanted)
    each = -(-each // MIN_PART_SIZE) * MIN_PART_SIZE
    return part_size_for(size, max(each, floor), rule.max_parts, rule.min_size)


def split_parts(size: int, part_size: int) -> list[Part]:
    """Cover ``[0, size)`` with consecutive parts of ``part_size`` bytes (the last may be short).

    A zero-byte object has no parts.
    """
    if size < 0:
        raise ValueError("size must not be negative")
    if part_size < 1:
        raise ValueError("part size must be positive")
    return [
        Part(index, offset, min(part_size, size - offset))
        for index, offset in enumerate(range(0, size, part_size))
    ]


T = TypeVar("T")


def batched_by_weight(
    items: Iterable[T], weight_of: Callable[[T], int], max_weight: int, max_items: int
) -> Iterator[list[T]]:
    """Group ``items`` in order into batches of at most ``max_items`` items and, unless a
    single item is heavier, at most ``max_weight`` total weight. Batches are never empty."""
    if max_items < 1 or max_weight < 1:
        raise ValueError("batch limits must be positive")
    batch: list[T] = []
    weight = 0
    for item in items:
        w = weight_of(item)
        if batch and (len(batch) >= max_items or weight + w > max_weight):
            yield batch
            batch, weight = [], 0
        batch.append(item)
        weight += w
    if batch:
        yield batch
