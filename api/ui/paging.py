"""Keyset pages over a stream in seq order: the page, and the cursor of the next one."""

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Generic, Protocol, TypeVar


class HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=HasSeq)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_after: int | None  # the cursor of the next page; None when this is the last


def take_page(items: Iterable[T], after: int, size: int) -> Page[T]:
    """``size`` items with seq above ``after``, from ``items`` in seq order. Reads one item past
    the page to know whether there is a next one, and no further."""
    if size < 1:
        raise ValueError("a page holds at least one item")
    wanted = islice((i for i in items if i.seq > after), size + 1)
    taken = list(wanted)
    if len(taken) <= size:
        return Page(taken, None)
    return Page(taken[:size], taken[size - 1].seq)
