"""transfer.sources.s3_timestamps: the fast path gives what botocore's parser gives, for the
form S3 lists and for every other form (those go to botocore's parser itself)."""

from datetime import UTC, datetime, timedelta

from botocore.utils import parse_timestamp as botocore_parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.sources.s3_timestamps import parse_timestamp

moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))


@given(moment=moments, millis=st.booleans())
def test_an_s3_listing_timestamp_parses_as_botocore_parses_it(moment, millis):
    fraction = f".{moment.microsecond // 1000:03d}" if millis else ""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    got = parse_timestamp(text)
    assert got == botocore_parse_timestamp(text)
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


@given(moment=moments, offset_minutes=st.integers(-14 * 60, 14 * 60).map(lambda m: m - m % 15))
def test_an_offset_parses_as_botocore_parses_it(moment, offset_minutes):
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{hours:02d}:{minutes:02d}"
    assert parse_timestamp(text) == botocore_parse_timestamp(text)


def test_other_forms_go_to_botocore():
    for text in ("Wed, 02 Dec 2026 01:43:12 GMT", "1764639792", "2026-12-02T01:43:12"):
        assert parse_timestamp(text) == botocore_parse_timestamp(text)
    assert parse_timestamp("Wed, 02 Dec 2026 01:43:12 GMT") == datetime(2026, 12, 2, 1, 43, 12, tzinfo=UTC)
