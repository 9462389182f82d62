"""The one byte formatter (``stagegate.sizes.format_bytes``): decimal and binary units."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.sizes import format_bytes


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1234, "1.2 kB"),
        (1_500_000, "1.5 MB"),
        (2.5e9, "2.5 GB"),
        (1e12, "1.0 TB"),
        (5e15, "5000.0 TB"),
        (-2000, "-2.0 kB"),
    ],
)
def test_format_bytes_examples(n: float, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [(999.5, "1.0 kB"), (999_950, "1.0 MB"), (999_960_000, "1.0 GB")],
)
def test_format_bytes_rounding_up_moves_to_the_next_unit(n: float, expected: str) -> None:
    """A value that rounds to 1000 of one unit is shown as 1.0 of the next, not "1000.0 kB"."""
    assert format_bytes(n) == expected


@settings(max_examples=300)
@given(st.floats(0, 1e14, allow_nan=False))
def test_format_bytes_uses_the_largest_unit_below_1000(n: float) -> None:
    """The shown number is below 1000 unless the unit is TB (the largest), and it reads
    back to about the value formatted."""
    number, unit = format_bytes(n).split(" ")
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
    assert float(number) < 1000 or unit == "TB"
    assert float(number) * scale == pytest.approx(n, rel=0.06, abs=0.5)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * 2**20 - 2**20 // 10, "2.9 MiB"),
        (2**30, "1.0 GiB"),
        (2**40, "1.0 TiB"),
        (5 * 2**50, "5120.0 TiB"),
        (-2048, "-2.0 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # rounds to 1024.0 KiB, so shown in the next unit
    ],
)
def test_format_bytes_binary_examples(n: float, expected: str) -> None:
    assert format_bytes(n, binary=True) == expected


@settings(max_examples=300)
@given(st.floats(0, 1e14, allow_nan=False))
def test_format_bytes_binary_uses_the_largest_unit_below_1024(n: float) -> None:
    number, unit = format_bytes(n, binary=True).split(" ")
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]
    assert float(number) < 1024 or unit == "TiB"
    assert float(number) * scale == pytest.approx(n, rel=0.06, abs=0.5)
