"""Usage for chargeback: bytes moved from the source, bytes copied from peer nodes, bytes
reused from the cache, bytes egressed and NVMe GB-hours per user or project, each its own
figure: reading a source, copying over the cluster fabric and holding data cost different
things, and a cache hit moves nothing.

Everything is derived from the audit trail (plus ``jobs.project``), so a report can be
recomputed at any time and never disagrees with what the trail says happened.

Definitions (``stagegate usage --help`` and ``GET /v1/usage`` say the same):

- **bytes_from_source**: for each staging that reached ``stage.completed``, the bytes read from
  its source to make it available: on the service, the sum of ``details.node_bytes`` of its
  ``policy.allowed`` event over the nodes it copied to itself (``details.copied``; events from
  before that key: the nodes not in ``details.cache_hits``), plus any node whose cache hit
  failed its check and was copied afresh (a ``dataset.quarantined`` event of the staging with
  ``found_by: verify``), less the bytes of those nodes it took from datasets already cached
  there, by link, reflink or local copy (delta staging: ``details.node_bytes_from_cache`` of
  ``stage.completed``) and those
  a node copied from a peer node that had read them (peer fan-out, ``details.copied_from``);
  embedded, the ``bytes`` of ``stage.completed``. Counted in the period of
  ``stage.completed``; ``stagings`` counts those events. Each byte read from the source
  counts once.
- **bytes_from_peers**: for the same stagings, the bytes their nodes copied from a peer node
  that had read them (peer fan-out, ``details.copied_from``): moved over the cluster's network,
  not read from the source. Embedded stagings: 0.
- **bytes_from_cache**: for the same stagings, the bytes of the other nodes (data a node
  already held, or another staging was writing, and that this staging reused without
  reading the source) and the bytes it took from the node's cache (linked, reflinked or copied
  from a dataset cached there): nothing moved for them. Embedded stagings: 0. A byte is
  counted in one of the three, never two.
- **bytes_egressed**: the ``bytes`` of each ``egress.completed`` event, in its period;
  ``egresses`` counts those events.
- **nvme_gb_hours**: for each service staging and each of its nodes (cache hits included:
  a hit still holds the space), node_bytes / 1e9 times the hours the data was pinned: from its
  ``policy.allowed`` event to its ``stage.released`` (by its owner, an admin, or the service when
  its pin lease ran out) or ``stage.failed`` event, or to the end of the report if still held.
  Intervals are clipped to [since, until) and split across periods at UTC month (or day)
  boundaries. Embedded stagings pin nothing (0).
- **key**: the user is the event's actor; the project is ``jobs.project`` of the event's
  job_id, else the event's ``details.project`` (egress events carry it), else ``(none)``.

The report ends at ``until`` or ``now``, whichever is earlier: events after it are not
read, and a pin still held then counts up to it (no billing the future). Periods are UTC.
"""

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal, get_args

from sqlalchemy import select

from stagegate.actions import AuditAction
from stagegate.errors import InvalidInputError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import AuditEvent
from stagegate.ledger.models import JobRow

By = Literal["user", "project"]
Period = Literal["month", "day", "all"]
NO_PROJECT = "(none)"
ALL_PERIODS = "all"
GB = 1e9
# Events are resolved to projects a chunk at a time: one jobs query per chunk, not per event.
CHUNK = 1000

PIN_ACTIONS = (
    AuditAction.POLICY_ALLOWED,
    AuditAction.STAGE_RELEASED,
    AuditAction.STAGE_FAILED,
    AuditAction.DATASET_QUARANTINED,  # a hit that failed its check is copied afresh
)
COUNTED_ACTIONS = (AuditAction.STAGE_COMPLETED, AuditAction.EGRESS_COMPLETED)


@dataclass(frozen=True, slots=True)
class UsageRow:
    period: str  # "2026-11" (month), "2026-11-26" (day) or "all"
    key: str  # a user, or a project ("(none)" when none)
    bytes_from_source: int = 0
    bytes_from_peers: int = 0
    bytes_from_cache: int = 0
    bytes_egressed: int = 0
    nvme_gb_hours: float = 0.0
    stagings: int = 0
    egresses: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


# -- periods: pure arithmetic ----------------------------------------------------------------


def _check_period(period: str) -> None:
    if period not in get_args(Period):
        raise InvalidInputError(f"period must be one of {', '.join(get_args(Period))}, not {period!r}")


def period_of(moment: datetime, period: Period) -> str:
    """The label of the UTC period holding ``moment``."""
    _check_period(period)
    utc = moment.astimezone(UTC)
    if period == "month":
        return f"{utc:%Y-%m}"
    if period == "day":
        return f"{utc:%Y-%m-%d}"
    return ALL_PERIODS


def next_boundary(moment: datetime, period: Period) -> datetime | None:
    """The start of the UTC period after the one holding ``moment``; None for "all"."""
    _check_period(period)
    utc = moment.astimezone(UTC)
    if period == "day":
        return datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)
    if period == "month":
        year, month = (utc.year + 1, 1) if utc.month == 12 else (utc.year, utc.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)
    return None


def split_hours(start: datetime, end: datetime, period: Period) -> list[tuple[str, float]]:
    """[start, end) cut at period boundaries: (period label, hours in it), oldest first.
    An empty or inverted interval has no pieces."""
    pieces: list[tuple[str, float]] = []
    while start < end:
        boundary = next_boundary(start, period)
        stop = end if boundary is None else min(boundary, end)
        pieces.append((period_of(start, period), (stop - start) / timedelta(hours=1)))
        start = stop
    return pieces


def clip(
    start: datetime, end: datetime, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime] | None:
    """[start, end) within [since, until), or None if nothing of it is."""
    if since is not None:
        start = max(start, since)
    if until is not None:
        end = min(end, until)
    return (start, end) if start < end else None


# -- the report --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    bytes_from_source: int = 0
    bytes_from_peers: int = 0
    bytes_from_cache: int = 0
    bytes_egressed: int = 0
    gb_hours: float = 0.0
    stagings: int = 0
    egresses: int = 0


@dataclass(slots=True)
class _Pin:
    """A service staging's hold on its nodes, open from its ``policy.allowed`` event."""

    key: str
    start: datetime
    node_bytes: dict[str, int]  # per node: they are all pinned over the same interval
    copied: set[str]  # the nodes it copied to from the source; the others reused a cached copy

    @property
    def total(self) -> int:
        return sum(self.node_bytes.values())

    @property
    def from_source(self) -> int:
        return sum(n for node, n in self.node_bytes.items() if node in self.copied)


def _node_bytes(details: Mapping[str, object]) -> dict[str, int] | None:
    held = details.get("node_bytes")
    if not isinstance(held, dict):
        return None
    return {
        str(node): v for node, v in held.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0
    }


def _peer_bytes(details: Mapping[str, object], pin: _Pin) -> int:
    """Of the bytes of the nodes ``pin`` copied to, those copied from peers, not the source
    (``details.copied_from`` of ``stage.completed``: per node, bytes by origin), at most each
    node's own bytes."""
    copied = details.get("copied_from")
    if not isinstance(copied, dict):
        return 0
    total = 0
    for node, by_origin in copied.items():
        if node not in pin.copied or not isinstance(by_origin, dict):
            continue
        from_peers = sum(
            n
            for origin, n in by_origin.items()
            if origin != "source" and isinstance(n, int) and not isinstance(n, bool) and n > 0
        )
        total += min(from_peers, pin.node_bytes.get(node, 0))
    return total


def _names(value: object) -> set[str]:
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _copied(details: Mapping[str, object], nodes: Iterable[str]) -> set[str]:
    """The nodes a staging copied to itself. Events from before ``copied`` was recorded name
    only the hits: every other node counts as copied (a staging that waited for another's
    copy was then counted twice; there is no telling it apart afterwards)."""
    if "copied" in details:
        return _names(details["copied"])
    return set(nodes) - _names(details.get("cache_hits"))


def _linked(details: Mapping[str, object], pin: _Pin) -> int:
    """Of the bytes of the nodes ``pin`` copied to, those taken from datasets already cached
    there (delta staging: ``details.node_bytes_from_cache`` of ``stage.completed``)."""
    taken = _node_bytes({"node_bytes": details.get("node_bytes_from_cache")}) or {}
    return sum(min(n, pin.node_bytes.get(node, 0)) for node, n in taken.items() if node in pin.copied)


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInputError(f"{name} must be timezone-aware")
    return moment


def _chunks(events: Iterable[AuditEvent], size: int) -> Iterator[list[AuditEvent]]:
    it = iter(events)
    while chunk := list(islice(it, size)):
        yield chunk


class _Report:
    def __init__(self, period: Period, since: datetime | None, end: datetime) -> None:
        self.period, self.since, self.end = period, since, end
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.pins: dict[str, _Pin] = {}  # open pins by job id: bounded by stagings held, not by events

    def _tally(self, label: str, key: str) -> _Tally:
        return self.tallies.setdefault((label, key), _Tally())

    def _hold(self, pin: _Pin, until: datetime) -> None:
        window = clip(pin.start, until, self.since, self.end)
        if window is None or pin.total == 0:
            return
        for label, hours in split_hours(*window, self.period):
            self._tally(label, pin.key).gb_hours += pin.total / GB * hours

    def take(self, event: AuditEvent, key: str) -> None:
        action, job = event.action, event.job_id
        if action == AuditAction.POLICY_ALLOWED:
            held = _node_bytes(event.details)
            if job is not None and held is not None:
                self.pins[job] = _Pin(key, event.time, held, _copied(event.details, held))
        elif action == AuditAction.DATASET_QUARANTINED:
            pin = self.pins.get(job) if job is not None else None
            node = event.details.get("node")
            if pin is not None and event.details.get("found_by") == "verify" and isinstance(node, str):
                pin.copied.add(node)
        elif action in (AuditAction.STAGE_RELEASED, AuditAction.STAGE_FAILED):
            pin = self.pins.pop(job, None) if job is not None else None
            if pin is not None:
                self._hold(pin, event.time)
        elif action == AuditAction.STAGE_COMPLETED:
            pin = self.pins.get(job) if job is not None else None
            tally = self._tally(period_of(event.time, self.period), key)
            if pin is None:  # embedded: no cache to reuse
                tally.bytes_from_source += event.bytes
            else:
                # Of the bytes of the nodes it copied to, those copied from a peer that read
                # them (fan-out) moved over the cluster, those linked from the node's cache
                # (delta staging) did not move; neither came from the source. Clamped so that
                # no byte counts in two columns, whatever the events say.
                peers = min(pin.from_source, _peer_bytes(event.details, pin))
                linked = min(pin.from_source - peers, _linked(event.details, pin))
                tally.bytes_from_source += pin.from_source - peers - linked
                tally.bytes_from_peers += peers
                tally.bytes_from_cache += pin.total - pin.from_source + linked
            tally.stagings += 1
        elif action == AuditAction.EGRESS_COMPLETED:
            tally = self._tally(period_of(event.time, self.period), key)
            tally.bytes_egressed += event.bytes
            tally.egresses += 1

    def rows(self) -> list[UsageRow]:
        for pin in self.pins.values():  # still held at the end of the report
            self._hold(pin, self.end)
        self.pins.clear()
        return [
            UsageRow(
                period=label,
                key=key,
                bytes_from_source=t.bytes_from_source,
                bytes_from_peers=t.bytes_from_peers,
                bytes_from_cache=t.bytes_from_cache,
                bytes_egressed=t.bytes_egressed,
                nvme_gb_hours=t.gb_hours,
                stagings=t.stagings,
                egresses=t.egresses,
            )
            for (label, key), t in sorted(self.tallies.items())
        ]


def _projects(ledger: Ledger, job_ids: set[str]) -> dict[str, str | None]:
    if not job_ids:
        return {}
    with ledger.read_session() as session, session.begin():
        rows = session.execute(select(JobRow.id, JobRow.project).where(JobRow.id.in_(sorted(job_ids))))
        return {job_id: project for job_id, project in rows}


def _project_of(event: AuditEvent, projects: Mapping[str, str | None]) -> str:
    project = projects.get(event.job_id) if event.job_id is not None else None
    if not project:
        carried = event.details.get("project")
        project = carried if isinstance(carried, str) else None
    return project or NO_PROJECT


def usage(
    ledger: Ledger,
    *,
    by: By = "user",
    since: datetime | None = None,
    until: datetime | None = None,
    period: Period = "month",
    now: datetime | None = None,
) -> list[UsageRow]:
    """Usage per (period, user or project), sorted by period then key; see the module docstring.

    Events are streamed, a page at a time, in chain order; memory holds the pins still open and
    one row per (period, key).
    """
    if by not in get_args(By):
        raise InvalidInputError(f"by must be one of {', '.join(get_args(By))}, not {by!r}")
    _check_period(period)
    since, until = _aware(since, "since"), _aware(until, "until")
    now = _aware(now, "now") or datetime.now(UTC)
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("since must be before until")
    end = now if until is None else min(until, now)
    report = _Report(period, since, end)
    trail = AuditTrail(ledger)
    # Only six actions matter. Pin events are read from the beginning (a pin taken before the
    # window may be held into it); counted events only from ``since``. Each stream uses the
    # action index; merged on seq they come back in chain order.
    streams = [trail.events(action=a, until=end) for a in PIN_ACTIONS]
    streams += [trail.events(action=a, since=since, until=end) for a in COUNTED_ACTIONS]
    for chunk in _chunks(heapq.merge(*streams, key=lambda e: e.seq), CHUNK):
        if by == "project":
            projects = _projects(ledger, {e.job_id for e in chunk if e.job_id is not None})
            for event in chunk:
                report.take(event, _project_of(event, projects))
        else:
            for event in chunk:
                report.take(event, event.actor)
    return report.rows()
