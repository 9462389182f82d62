"""The pure arithmetic of usage reports: period labels, boundaries, splitting and clipping."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.ledger.usage import clip, next_boundary, period_of, split_hours


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_labels_are_utc() -> None:
    late_in_new_york = datetime(2026, 11, 30, 22, 0, tzinfo=timezone(timedelta(hours=-5)))  # 03:00 UTC Dec 1
    assert period_of(late_in_new_york, "month") == "2026-12"
    assert period_of(late_in_new_york, "day") == "2026-12-01"
    assert period_of(late_in_new_york, "all") == "all"


def test_boundaries() -> None:
    assert next_boundary(at(2026, 11, 26, 13, 5), "day") == at(2026, 11, 27)
    assert next_boundary(at(2026, 11, 30, 23, 59), "day") == at(2026, 12, 1)
    assert next_boundary(at(2026, 11, 26), "month") == at(2026, 12, 1)
    assert next_boundary(at(2026, 12, 31, 23), "month") == at(2027, 1, 1)
    assert next_boundary(at(2026, 11, 1), "month") == at(2026, 12, 1), "a boundary itself starts a period"
    assert next_boundary(at(2026, 11, 1), "all") is None
    with pytest.raises(InvalidInputError, match="period"):
        next_boundary(at(2026, 11, 1), "week")  # type: ignore[arg-type]


def test_an_interval_crossing_a_month_boundary_is_split_there() -> None:
    # 30 Nov 22:00 -> 1 Dec 01:30 UTC: 2 h in November, 1.5 h in December.
    assert split_hours(at(2026, 11, 30, 22), at(2026, 12, 1, 1, 30), "month") == [
        ("2026-11", 2.0),
        ("2026-12", 1.5),
    ]
    # By day the same interval splits at midnight too (the same instant here).
    assert split_hours(at(2026, 11, 30, 22), at(2026, 12, 1, 1, 30), "day") == [
        ("2026-11-30", 2.0),
        ("2026-12-01", 1.5),
    ]
    assert split_hours(at(2026, 11, 30, 22), at(2026, 12, 1, 1, 30), "all") == [("all", 3.5)]


def test_an_interval_spanning_whole_months_and_the_year_end() -> None:
    # 15 Nov 00:00 -> 10 Jan 12:00: 16 days of November, all 31 of December, 9.5 of January.
    pieces = split_hours(at(2026, 11, 15), at(2027, 1, 10, 12), "month")
    assert pieces == [("2026-11", 16 * 24.0), ("2026-12", 31 * 24.0), ("2027-01", 9.5 * 24)]


def test_several_days() -> None:
    # 26 Nov 18:00 -> 28 Nov 06:00: 6 h, 24 h, 6 h.
    assert split_hours(at(2026, 11, 26, 18), at(2026, 11, 28, 6), "day") == [
        ("2026-11-26", 6.0),
        ("2026-11-27", 24.0),
        ("2026-11-28", 6.0),
    ]


def test_empty_and_inverted_intervals_have_no_pieces() -> None:
    assert split_hours(at(2026, 11, 1), at(2026, 11, 1), "month") == []
    assert split_hours(at(2026, 11, 2), at(2026, 11, 1), "day") == []


def test_clip() -> None:
    start, end = at(2026, 11, 26, 10), at(2026, 11, 26, 14)
    assert clip(start, end, None, None) == (start, end)
    assert clip(start, end, at(2026, 11, 26, 11), None) == (at(2026, 11, 26, 11), end)
    assert clip(start, end, None, at(2026, 11, 26, 12)) == (start, at(2026, 11, 26, 12))
    assert clip(start, end, at(2026, 11, 26, 11), at(2026, 11, 26, 12)) == (
        at(2026, 11, 26, 11),
        at(2026, 11, 26, 12),
    )
    assert clip(start, end, at(2026, 11, 26, 14), None) is None, "until is exclusive: nothing from 14:00"
    assert clip(start, end, None, start) is None


moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(moments, moments, st.sampled_from(["month", "day", "all"]))
def test_pieces_add_up_and_each_sits_in_one_period(a: datetime, b: datetime, period: str) -> None:
    start, end = min(a, b), max(a, b)
    pieces = split_hours(start, end, period)  # type: ignore[arg-type]
    assert sum(h for _, h in pieces) == pytest.approx((end - start) / timedelta(hours=1))
    labels = [label for label, _ in pieces]
    assert labels == sorted(set(labels)), "one piece per period, in order"
    assert all(h > 0 for _, h in pieces)
    if pieces:
        assert labels[0] == period_of(start, period)  # type: ignore[arg-type]
