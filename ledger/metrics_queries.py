"""What the API's ``/metrics`` reads from the ledger at scrape time.

Two kinds of figures:

- **Current state** (stagings and egresses by state, queue depth per node): small GROUP BY
  queries, answered afresh at every scrape.
- **Running totals** (bytes moved, cache hits, policy denials): folded from the audit trail.
  The trail is append-only and grows without end, so a scrape never rescans it: an
  :class:`EventTotals` remembers the last ``seq`` it folded and :func:`catch_up` reads only the
  events after it, in keyset pages on the primary key. Totals are derived from the durable
  trail, so every API replica (and a restarted one, after one full pass) reports the same
  counter values.

Evictions are not here: an evicted dataset's row is deleted and no event tells of it, so the
node workers count them (``workers.metrics``) rather than the schema growing a counter table.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from stagegate.actions import AuditAction
from stagegate.ledger.database import Ledger
from stagegate.ledger.models import AuditEventRow, JobRow, TaskRow
from stagegate.states import StagingState, TaskState

# Every state a service staging can be in, so each series exists (at 0) before its first staging.
STAGING_STATES = tuple(StagingState)
# Task states that mean "not started": queued = sent to the broker, waiting = not yet sent
# (beyond the per-node window of batches in flight).
QUEUE_STATES = (TaskState.WAITING, TaskState.QUEUED)
# The only events the totals read; everything else in the trail is skipped by the query.
COUNTED_ACTIONS = (
    AuditAction.STAGE_COMPLETED,
    AuditAction.EGRESS_COMPLETED,
    AuditAction.POLICY_ALLOWED,
    AuditAction.POLICY_DENIED,
)
DIRECTIONS: dict[str, str] = {AuditAction.STAGE_COMPLETED: "stage", AuditAction.EGRESS_COMPLETED: "egress"}
ZONES = {"stage": "staging", "egress": "egress"}
PAGE_SIZE = 5000
# A denial with no highest label: data without label or lineage, or a destination no rule covers.
UNLABELLED = "unlabelled"


@dataclass(frozen=True, slots=True)
class CountedEvent:
    """The fields of an audit event the totals need, with its job's kind and project."""

    seq: int
    action: str
    actor: str
    bytes: int
    details: dict[str, object]
    job_kind: str | None
    project: str | None


@dataclass
class EventTotals:
    """Running sums over the audit trail up to ``seq``. Pure: :func:`catch_up` feeds it."""

    seq: int = 0
    bytes_moved: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (direction, user, project)
    cache_hits: dict[str, int] = field(default_factory=dict)  # node
    denials: dict[tuple[str, str], int] = field(default_factory=dict)  # (zone, reason)

    def add(self, event: CountedEvent) -> None:
        self.seq = max(self.seq, event.seq)
        direction = DIRECTIONS.get(event.action)
        if direction is not None:
            project = event.project or _text(event.details.get("project")) or ""
            moved = (direction, event.actor, project)
            self.bytes_moved[moved] = self.bytes_moved.get(moved, 0) + event.bytes
        elif event.action == AuditAction.POLICY_ALLOWED:
            hits = event.details.get("cache_hits")
            for node in hits if isinstance(hits, list) else []:
                self.cache_hits[str(node)] = self.cache_hits.get(str(node), 0) + 1
        elif event.action == AuditAction.POLICY_DENIED:
            denied = (ZONES.get(event.job_kind or "", "staging"), denial_reason(event.details))
            self.denials[denied] = self.denials.get(denied, 0) + 1

    def add_all(self, events: Iterable[CountedEvent]) -> None:
        for event in events:
            self.add(event)


def denial_reason(details: dict[str, object]) -> str:
    """The kind of a denial, as a label of bounded cardinality: the highest classification
    label among what was refused. Reasons themselves are free text (one per object), so they
    cannot be a label."""
    return _text(details.get("highest_label")) or UNLABELLED


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def jobs_by_state(ledger: Ledger, kind: str) -> dict[str, int]:
    """How many service stagings (``kind="stage"``) or egresses are in each state. Embedded
    stagings (the CLI's ``--to``, no mode) are not the service's and are left out."""
    statement = select(JobRow.state, func.count()).where(JobRow.kind == kind)
    if kind == "stage":
        statement = statement.where(JobRow.mode.is_not(None))
    with ledger.read_session() as session, session.begin():
        rows = session.execute(statement.group_by(JobRow.state)).all()
    return {str(state): int(n) for state, n in rows}


def queue_depth(ledger: Ledger) -> dict[tuple[str, str], int]:
    """Tasks not yet started, by (node, state); the plan tasks (any node's) under node ''.
    Reads through the (state, lease_until) index."""
    with ledger.read_session() as session, session.begin():
        rows = session.execute(
            select(TaskRow.node, TaskRow.state, func.count())
            .where(TaskRow.state.in_(QUEUE_STATES))
            .group_by(TaskRow.node, TaskRow.state)
        ).all()
    return {(str(node), str(state)): int(n) for node, state, n in rows}


def head_seq(ledger: Ledger) -> int:
    """The last event's seq, 0 for an empty trail."""
    with ledger.read_session() as session, session.begin():
        return int(session.scalar(select(func.max(AuditEventRow.seq))) or 0)


def counted_events(ledger: Ledger, after: int, through: int, limit: int = PAGE_SIZE) -> list[CountedEvent]:
    """Up to ``limit`` of the counted events with ``after < seq <= through``, in seq order."""
    with ledger.read_session() as session, session.begin():
        rows = session.execute(
            select(
                AuditEventRow.seq,
                AuditEventRow.action,
                AuditEventRow.actor,
                AuditEventRow.bytes,
                AuditEventRow.details,
                JobRow.kind,
                JobRow.project,
            )
            .outerjoin(JobRow, JobRow.id == AuditEventRow.job_id)
            .where(
                AuditEventRow.seq > after,
                AuditEventRow.seq <= through,
                AuditEventRow.action.in_(COUNTED_ACTIONS),
            )
            .order_by(AuditEventRow.seq)
            .limit(limit)
        ).all()
    events = []
    for seq, action, actor, nbytes, details, kind, project in rows:
        parsed = json.loads(details)
        events.append(
            CountedEvent(
                seq=int(seq),
                action=str(action),
                actor=str(actor),
                bytes=int(nbytes),
                details=parsed if isinstance(parsed, dict) else {},
                job_kind=kind,
                project=project,
            )
        )
    return events


def catch_up(ledger: Ledger, totals: EventTotals, page_size: int = PAGE_SIZE) -> EventTotals:
    """Fold the events appended since ``totals.seq`` into ``totals`` and return it (or fresh
    totals, if the trail is shorter than what was folded: another ledger behind the same URL).

    Bounded by the head read first: appends are serialised until commit (see
    ``ledger.locks``), so every seq up to a visible head is committed and none is skipped.
    """
    head = head_seq(ledger)
    if head < totals.seq:
        totals = EventTotals()
    while totals.seq < head:
        page = counted_events(ledger, totals.seq, head, page_size)
        totals.add_all(page)
        if len(page) < page_size:
            totals.seq = head  # the rest up to head holds nothing counted
    return totals
