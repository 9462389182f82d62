"""Parsing the trail's and the usage page's query strings."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.api.ui.filters import (
    DEFAULT_PAGE_SIZE,
    TrailFilter,
    parse_trail_filter,
    parse_trail_query,
    parse_usage_query,
)
from stagegate.errors import InvalidInputError
from stagegate.ledger import AuditEvent


def event(
    source: str = "s3://d/vision/a/", digest: str | None = None, job_id: str | None = "j1"
) -> AuditEvent:
    return AuditEvent(
        seq=1, time=datetime(2026, 11, 1, tzinfo=UTC), actor="sam", role="scientist",
        action="stage.requested", job_id=job_id, job_ref=None, source=source, destination="nodes:gpu-01",
        bytes=0, files=0,
        manifest_digest=digest, policy_version=None, decision=None, reasons=(), details={},
        prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip


def test_empty_is_everything() -> None:
    query = parse_trail_query({})
    assert query.filter == TrailFilter() and query.filter.is_empty()
    assert (query.after, query.size) == (0, DEFAULT_PAGE_SIZE)
    assert parse_trail_filter({"user": "  ", "action": ""}) == TrailFilter()


def test_times_without_a_zone_are_utc_and_round_trip() -> None:
    flt = parse_trail_filter({"since": "2026-11-01T09:30", "until": "2026-11-02T00:00:00+01:00"})
    assert flt.since == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert flt.until == datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    assert parse_trail_filter(flt.to_params()) == flt
    assert flt.ledger_query()["since"] == flt.since


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-02T00:00", "until": "2026-11-01T00:00"}, "since must be before until"),
        ({"user": "x" * 201}, "user"),
        ({"job": "a\x07b"}, "job"),
        ({"after": "-1"}, "after"),
        ({"size": "0"}, "size"),
        ({"size": "501"}, "size"),
        ({"size": "ten"}, "size"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        parse_trail_query(params)


def test_source_matches_part_of_the_url_or_a_digest_prefix() -> None:
    assert TrailFilter(source="vision/a").matches(event(), lambda _e: None)
    assert not TrailFilter(source="speech").matches(event(), lambda _e: None)
    digest = "ab12cd" + "0" * 58
    assert TrailFilter(source="AB12CD").matches(event(digest=digest), lambda _e: None)
    assert not TrailFilter(source="ab12").matches(event(source="s3://x/", digest=digest), lambda _e: None)


def test_project_is_asked_of_the_resolver() -> None:
    assert TrailFilter(project="vision").matches(event(), lambda _e: "vision")
    assert not TrailFilter(project="vision").matches(event(), lambda _e: "speech")
    assert not TrailFilter(project="vision").matches(event(), lambda _e: None)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            name: st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=40)
            for name in ("user", "project", "job", "source", "action")
        },
    )
)
def test_text_filters_round_trip(params: dict[str, str]) -> None:
    flt = parse_trail_filter(params)
    assert parse_trail_filter(flt.to_params()) == flt


def test_usage_query_months() -> None:
    query = parse_usage_query(
        {"by": "project", "since": "2026-11", "until": "2026-12", "metric": "bytes_from_source"}
    )
    assert (query.since, query.until) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert parse_usage_query(query.to_params()) == query
    assert parse_usage_query({}).by == "user"
    for bad in (
        {"by": "node"},
        {"metric": "dollars"},
        {"since": "2026-13"},
        {"since": "2026-12", "until": "2026-11"},
    ):
        with pytest.raises(InvalidInputError):
            parse_usage_query(bad)
