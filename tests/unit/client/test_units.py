"""Tests for client.units (human durations) and the parser of sizes people type."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stagegate.client.units import format_duration
from stagegate.sizes import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("0", 0),
        ("64MiB", 64 * 2**20),
        ("64mib", 64 * 2**20),
        ("64 MiB", 64 * 2**20),
        ("  8 ki ", 8 * 1024),
        ("1.5G", 1_500_000_000),
        ("1.5GB", 1_500_000_000),
        ("2kb", 2000),
        ("2k", 2000),
        ("3T", 3 * 10**12),
        ("1TiB", 2**40),
        ("1.5KiB", 1536),
        ("10b", 10),
        ("10B", 10),
    ],
)
def test_parse_size_examples(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "MiB", "-1", "1.", ".5k", "1e6", "12 parsecs", "1 2", "1.5.2k", "0x10", "5PB", "+3"],
)
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "GB": 10**9,
    "tb": 10**12,
    "Ki": 2**10,
    "MiB": 2**20,
    "gib": 2**30,
    "TiB": 2**40,
}


@settings(max_examples=200)
@given(st.integers(0, 10**6), st.sampled_from(sorted(SUFFIXES)))
def test_parse_size_of_whole_numbers_is_exact(n: int, suffix: str) -> None:
    assert parse_size(f"{n}{suffix}") == n * SUFFIXES[suffix]


def test_parse_size_of_exact_byte_counts_beyond_float_precision() -> None:
    """A plain byte count must come back exactly, however large."""
    assert parse_size("9007199254740993") == 9007199254740993  # 2**53 + 1


DECIMAL_SUFFIXES = {"k": 10**3, "kB": 10**3, "M": 10**6, "GB": 10**9, "T": 10**12}


@settings(max_examples=200)
@example(whole=1, thousandths=1, suffix="k")  # "1.001k": exactly 1001 bytes
@given(st.integers(0, 10**4), st.integers(0, 999), st.sampled_from(sorted(DECIMAL_SUFFIXES)))
def test_parse_size_of_decimal_fractions_is_exact(whole: int, thousandths: int, suffix: str) -> None:
    """With a decimal unit of at least 1000, three decimals name a whole number of bytes;
    binary floating point must not shave a byte off it."""
    unit = DECIMAL_SUFFIXES[suffix]
    expected = whole * unit + thousandths * unit // 1000
    assert parse_size(f"{whole}.{thousandths:03d}{suffix}") == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0:00"),
        (0.4, "0:00"),
        (0.5, "0:01"),
        (59, "0:59"),
        (59.6, "1:00"),
        (61, "1:01"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3661, "1:01:01"),
        (100 * 3600 + 5, "100:00:05"),
    ],
)
def test_format_duration_examples(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@given(st.integers(0, 10**7))
def test_format_duration_roundtrip(seconds: int) -> None:
    fields = [int(f) for f in format_duration(seconds).split(":")]
    if len(fields) == 2:
        fields.insert(0, 0)
    hours, minutes, secs = fields
    assert 0 <= minutes < 60 and 0 <= secs < 60
    assert hours * 3600 + minutes * 60 + secs == seconds
