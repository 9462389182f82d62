"""Keyset pages: every item exactly once across pages, and no reading past the next page's first."""

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.api.ui.paging import take_page


@dataclass(frozen=True)
class Item:
    seq: int


@given(st.lists(st.integers(1, 10_000), unique=True).map(sorted), st.integers(1, 20))
def test_pages_cover_everything_once(seqs: list[int], size: int) -> None:
    items = [Item(s) for s in seqs]
    seen: list[int] = []
    after = 0
    while True:
        page = take_page(items, after, size)
        assert len(page.items) <= size
        seen += [i.seq for i in page.items]
        if page.next_after is None:
            break
        assert len(page.items) == size
        after = page.next_after
    assert seen == seqs


def test_reads_one_past_the_page_and_no_more() -> None:
    read: list[int] = []

    def stream() -> object:
        for s in range(1, 1000):
            read.append(s)
            yield Item(s)

    page = take_page(stream(), 10, 5)  # type: ignore[arg-type]
    assert [i.seq for i in page.items] == [11, 12, 13, 14, 15] and page.next_after == 15
    assert read[-1] == 16


def test_an_exact_last_page_has_no_next() -> None:
    page = take_page([Item(1), Item(2)], 0, 2)
    assert page.next_after is None
    with pytest.raises(ValueError):
        take_page([], 0, 0)
