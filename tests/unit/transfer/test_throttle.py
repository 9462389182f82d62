"""Tests for transfer.throttle.BandwidthLimiter, driven by a fake clock."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.throttle import BandwidthLimiter


class FakeTime:
    """A clock whose sleep advances it, recording every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(rate: int, fake: FakeTime) -> BandwidthLimiter:
    return BandwidthLimiter(rate, clock=fake.clock, sleep=fake.sleep)


def test_initial_burst_of_one_second_passes_without_sleeping() -> None:
    fake = FakeTime()
    lim = limiter(1000, fake)
    for _ in range(10):
        lim.consume(100)
    assert fake.sleeps == []


def test_ten_seconds_of_bytes_take_nine_seconds_after_the_burst() -> None:
    fake = FakeTime()
    rate = 1_000_000
    lim = limiter(rate, fake)
    start = fake.now
    for _ in range(100):
        lim.consume(rate // 10)
    assert fake.now - start == pytest.approx(9.0)
    assert sum(fake.sleeps) == pytest.approx(9.0)


def test_one_large_request_pays_its_whole_debt() -> None:
    fake = FakeTime()
    lim = limiter(100, fake)
    lim.consume(550)  # 100 from the bucket, 450 owed
    assert fake.sleeps == [pytest.approx(4.5)]
    lim.consume(100)  # the bucket is empty again after the wait
    assert sum(fake.sleeps) == pytest.approx(5.5)


def test_idle_time_refills_at_most_one_second_of_burst() -> None:
    fake = FakeTime()
    lim = limiter(100, fake)
    lim.consume(100)
    fake.advance(3600)  # an hour idle buys only one second of burst
    lim.consume(100)
    assert fake.sleeps == []
    lim.consume(50)
    assert fake.sleeps == [pytest.approx(0.5)]


def test_partial_refill() -> None:
    fake = FakeTime()
    lim = limiter(100, fake)
    lim.consume(100)
    fake.advance(0.25)
    lim.consume(25)
    assert fake.sleeps == []
    lim.consume(10)
    assert fake.sleeps == [pytest.approx(0.1)]


@settings(max_examples=200)
@given(
    rate=st.integers(1, 10**9),
    chunks=st.lists(st.integers(0, 10**9), min_size=1, max_size=50),
)
def test_elapsed_time_matches_the_rate(rate: int, chunks: list[int]) -> None:
    """With no idle time, n bytes take max(0, n - rate) / rate seconds (the debt), and
    the limiter never lets more than rate * (elapsed + 1) bytes through."""
    fake = FakeTime()
    lim = limiter(rate, fake)
    passed = 0
    for n in chunks:
        lim.consume(n)
        passed += n
        elapsed = fake.now - 1000.0
        assert passed <= rate * (elapsed + 1) * (1 + 1e-9) + 1e-6
    expected = max(0, sum(chunks) - rate) / rate
    assert fake.now - 1000.0 == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("rate", [0, -1, -1000])
def test_non_positive_rate_is_refused(rate: int) -> None:
    with pytest.raises(ValueError):
        BandwidthLimiter(rate)
