"""Everything the pages read from the ledger, in one place, through the ledger's public API.

Each function takes the caller and applies the API's rules: a staging or egress someone may
not see is ``NotFoundError`` (as ``GET /v1/...`` answers 404); the trail, usage and integrity
are for trail readers only, which the pages check before calling here.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from stagegate.actions import AuditAction
from stagegate.api.ui.filters import TrailFilter
from stagegate.api.ui.paging import Page, take_page
from stagegate.ledger import (
    AuditEvent,
    AuditTrail,
    ChainVerdict,
    Ledger,
    Nodes,
    NodeView,
    Principal,
    Staging,
    StagingViews,
)
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.egresses import Egress, Egresses
from stagegate.ledger.job_projects import projects_of
from stagegate.ledger.log_check import check_latest
from stagegate.ledger.usage import UsageRow, usage
from stagegate.settings import load_settings

TRAIL_READERS = ("auditor", "admin")
LIST_LIMIT = 100
PROJECT_CHUNK = 500  # events resolved to projects per jobs query


def _project(event: AuditEvent, projects: dict[str, str | None]) -> str | None:
    # As usage counts it: the job's project, else the project an egress event carries.
    project = projects.get(event.job_id) if event.job_id is not None else None
    carried = event.details.get("project")
    return project or (carried if isinstance(carried, str) else None)


def matching_events(ledger: Ledger, flt: TrailFilter, after: int = 0) -> Iterator[AuditEvent]:
    """The trail's events matching ``flt``, in chain order, streamed."""
    query: dict[str, Any] = flt.ledger_query()
    events = (e for e in AuditTrail(ledger).events(**query) if e.seq > after)
    if flt.project is None:
        yield from (e for e in events if flt.matches(e, lambda _e: None))
        return
    while chunk := list(islice(events, PROJECT_CHUNK)):
        projects = projects_of(ledger, (e.job_id for e in chunk if e.job_id is not None))
        yield from (e for e in chunk if flt.matches(e, lambda ev, p=projects: _project(ev, p)))  # type: ignore[misc]


def trail_page(ledger: Ledger, flt: TrailFilter, after: int, size: int) -> Page[AuditEvent]:
    return take_page(matching_events(ledger, flt, after), after, size)


def _events_of(ledger: Ledger, job_id: str) -> list[AuditEvent]:
    # The job filter also matches job references; a reference that happens to be this id must
    # not slip someone else's events into the story.
    return [e for e in AuditTrail(ledger).events(job=job_id) if e.job_id == job_id]


def _first(events: Iterable[AuditEvent], *actions: str) -> AuditEvent | None:
    return next((e for e in events if e.action in actions), None)


@dataclass(frozen=True, slots=True)
class StagingStory:
    staging: Staging
    requested: AuditEvent | None
    decision: AuditEvent | None
    completed: AuditEvent | None
    failed: AuditEvent | None
    released: AuditEvent | None
    events: list[AuditEvent] | None  # the raw trail rows: trail readers only


def staging_story(ledger: Ledger, who: Principal, staging_id: str) -> StagingStory:
    staging = StagingViews(ledger).visible(who, staging_id)
    events = _events_of(ledger, staging_id)
    return StagingStory(
        staging=staging,
        requested=_first(events, AuditAction.STAGE_REQUESTED),
        decision=_first(events, AuditAction.POLICY_ALLOWED, AuditAction.POLICY_DENIED),
        completed=_first(events, AuditAction.STAGE_COMPLETED),
        failed=_first(events, AuditAction.STAGE_FAILED),
        released=_first(events, AuditAction.STAGE_RELEASED),
        events=events if who.role in TRAIL_READERS else None,
    )


@dataclass(frozen=True, slots=True)
class EgressStory:
    egress: Egress
    requested: AuditEvent | None
    decision: AuditEvent | None
    completed: AuditEvent | None
    failed: AuditEvent | None
    deleted: list[AuditEvent] = field(default_factory=list)
    events: list[AuditEvent] | None = None

    def selection_rule(self) -> list[str]:
        """How the checkpoints were chosen, as the request put it."""
        details = self.requested.details if self.requested is not None else {}
        rule = []
        if details.get("latest"):
            rule.append(f"the latest {details['latest']}")
        if details.get("best"):
            rule.append(f"the best by {details['best']} ({details.get('mode') or 'min'})")
        names = details.get("names")
        if isinstance(names, list) and names:
            rule.append("by name: " + ", ".join(str(n) for n in names))
        if details.get("delete_unselected"):
            rule.append("delete the unselected ones once the selected are verified")
        return rule

    def labels(self) -> dict[str, dict[str, Any]]:
        labels = self.decision.details.get("labels") if self.decision is not None else None
        return (
            {str(k): v for k, v in labels.items() if isinstance(v, dict)} if isinstance(labels, dict) else {}
        )


def egress_story(ledger: Ledger, who: Principal, egress_id: str) -> EgressStory:
    egress = Egresses(ledger).visible(who, egress_id)
    events = _events_of(ledger, egress_id)
    return EgressStory(
        egress=egress,
        requested=_first(events, AuditAction.EGRESS_REQUESTED),
        decision=_first(events, AuditAction.POLICY_ALLOWED, AuditAction.POLICY_DENIED),
        completed=_first(events, AuditAction.EGRESS_COMPLETED),
        failed=_first(events, AuditAction.EGRESS_FAILED),
        deleted=[e for e in events if e.action == AuditAction.CHECKPOINT_DELETED],
        events=events if who.role in TRAIL_READERS else None,
    )


def stagings_of(ledger: Ledger, who: Principal) -> list[Staging]:
    """The caller's stagings (a trail reader's: everyone's), newest first."""
    return StagingViews(ledger).for_principal(who, None, LIST_LIMIT)


def egresses_of(ledger: Ledger, who: Principal) -> list[Egress]:
    """The egresses the caller may see, newest first: found by their ``egress.requested``
    events, since the ledger lists egresses no other way."""
    sees_all = who.role in ("steward", *TRAIL_READERS)
    requested = AuditTrail(ledger).events(
        action=AuditAction.EGRESS_REQUESTED, actor=None if sees_all else who.user
    )
    newest = deque((e.job_id for e in requested if e.job_id is not None), maxlen=LIST_LIMIT)
    return [Egresses(ledger).visible(who, job_id) for job_id in reversed(newest)]


def nodes(ledger: Ledger) -> list[NodeView]:
    return Nodes(ledger).all()


def usage_rows(ledger: Ledger, by: str, since: datetime | None, until: datetime | None) -> list[UsageRow]:
    return usage(
        ledger, by="project" if by == "project" else "user", since=since, until=until, period="month"
    )


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    """The newest signed checkpoint, its signature checked with the key stored beside it, and
    whether the events now in the trail extend it (the same checks as GET /v1/audit/checkpoint
    with verify=true; an auditor checks the note against a key they hold themselves)."""

    note: str
    size: int
    key: str
    signature_ok: bool
    consistent: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Integrity:
    verdict: ChainVerdict
    head: tuple[int, str] | None
    checkpoint: CheckpointStatus | None


def latest_checkpoint(ledger: Ledger) -> CheckpointStatus | None:
    """The integrity page's checkpoint: None while the service has signed none."""
    latest = Checkpoints(ledger, origin=load_settings().checkpoint_origin).latest()
    if latest is None:
        return None
    check = check_latest(ledger, latest, against_log=True)
    key = f"{latest.key_name}+{latest.key_id:08x}"
    consistent = check.consistent is True
    return CheckpointStatus(latest.note, latest.size, key, check.signature_ok, consistent, check.problems)


def integrity(ledger: Ledger) -> Integrity:
    trail = AuditTrail(ledger)
    head = trail.head()  # first: the walk then covers at least up to it
    return Integrity(verdict=trail.verify(), head=head, checkpoint=latest_checkpoint(ledger))
