"""The audit trail page's query string: filters, paging cursor and page size, parsed once.

Pure: a mapping of query parameters in, a :class:`TrailQuery` or an ``InvalidInputError``
naming the bad parameter out. The ledger filters what it can (user, action, job, time);
project and source are checked here, event by event (:meth:`TrailFilter.matches`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from stagegate.errors import InvalidInputError
from stagegate.ledger import AuditEvent

MAX_TEXT = 200
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TEXT_FILTERS = ("user", "project", "job", "source", "action")
TIME_FILTERS = ("since", "until")


@dataclass(frozen=True, slots=True)
class TrailFilter:
    """What an auditor narrows the trail to; every field None means everything."""

    user: str | None = None
    project: str | None = None
    job: str | None = None
    source: str | None = None  # a part of the source URL, or a dataset's manifest digest (prefix)
    action: str | None = None
    since: datetime | None = None  # inclusive, UTC
    until: datetime | None = None  # exclusive, UTC

    def ledger_query(self) -> dict[str, object]:
        """The part :meth:`AuditTrail.events` filters by (indexed in the database)."""
        return {
            "actor": self.user,
            "action": self.action,
            "job": self.job,
            "since": self.since,
            "until": self.until,
        }

    def matches(self, event: AuditEvent, project_of: Callable[[AuditEvent], str | None]) -> bool:
        """The rest: project and source, which the ledger cannot filter by."""
        if self.source is not None and not _about_source(event, self.source):
            return False
        return self.project is None or project_of(event) == self.project

    def to_params(self) -> dict[str, str]:
        """Query parameters that give this filter back (for links: next page, CSV)."""
        params: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            params[f.name] = _format_time(value) if isinstance(value, datetime) else str(value)
        return params

    def is_empty(self) -> bool:
        return not self.to_params()


@dataclass(frozen=True, slots=True)
class TrailQuery:
    filter: TrailFilter
    after: int  # show events with seq above this (0: from the start)
    size: int


def _about_source(event: AuditEvent, wanted: str) -> bool:
    # A staging's source, an egress's run directory, or the dataset by its digest (a prefix is
    # enough: auditors copy the first 12 characters the pages show).
    if wanted in event.source:
        return True
    digest = event.manifest_digest or ""
    return len(wanted) >= 6 and digest.startswith(wanted.lower())


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(raw: str, name: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC (what the form's datetime-local field sends,
    and the pages say times are UTC)."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be a time like 2026-11-01T09:30 (UTC), not {raw[:40]!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or not value.isprintable():
        raise InvalidInputError(f"{name} must be at most {MAX_TEXT} printable characters")
    return value


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInputError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def parse_trail_filter(params: Mapping[str, str]) -> TrailFilter:
    texts = {name: _text(params, name) for name in TEXT_FILTERS}
    times = {name: parse_time(raw, name) for name in TIME_FILTERS if (raw := params.get(name, "").strip())}
    since, until = times.get("since"), times.get("until")
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("since must be before until")
    return TrailFilter(**texts, since=since, until=until)


def parse_trail_query(params: Mapping[str, str]) -> TrailQuery:
    return TrailQuery(
        filter=parse_trail_filter(params),
        after=_int(params, "after", 0, 0, 2**62),
        size=_int(params, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    )


USAGE_METRICS = (
    "nvme_gb_hours",
    "bytes_from_source",
    "bytes_from_peers",
    "bytes_from_cache",
    "bytes_egressed",
)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    by: str  # user | project
    metric: str  # what the chart draws: one of USAGE_METRICS
    since: datetime | None  # the first month's first instant
    last: datetime | None  # the last month counted (whole)

    @property
    def until(self) -> datetime | None:
        """Exclusive end: the first instant after the last month."""
        return None if self.last is None else _next_month(self.last)

    def to_params(self) -> dict[str, str]:
        params = {"by": self.by, "metric": self.metric}
        for name, moment in (("since", self.since), ("until", self.last)):
            if moment is not None:
                params[name] = moment.strftime("%Y-%m")
        return params


def parse_month(raw: str, name: str) -> datetime:
    """``2026-11`` (what the form's month field sends): the first instant of that UTC month."""
    try:
        return datetime.strptime(raw, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInputError(f"{name} must be a month like 2026-11, not {raw[:40]!r}") from None


def _next_month(moment: datetime) -> datetime:
    return (
        moment.replace(year=moment.year + 1, month=1)
        if moment.month == 12
        else moment.replace(month=moment.month + 1)
    )


def parse_usage_query(params: Mapping[str, str]) -> UsageQuery:
    """By user or project, from the month ``since`` through the month ``until`` (both whole)."""
    by = params.get("by", "user") or "user"
    if by not in ("user", "project"):
        raise InvalidInputError("by must be user or project")
    metric = params.get("metric", USAGE_METRICS[0]) or USAGE_METRICS[0]
    if metric not in USAGE_METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(USAGE_METRICS)}")
    since = parse_month(raw, "since") if (raw := params.get("since", "").strip()) else None
    last = parse_month(raw, "until") if (raw := params.get("until", "").strip()) else None
    if since is not None and last is not None and since > last:
        raise InvalidInputError("since must not be after until")
    return UsageQuery(by=by, metric=metric, since=since, last=last)
