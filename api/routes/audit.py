"""/v1/audit: the tamper-evident audit trail, for auditors and admins."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from stagegate.api.auth import Auditor
from stagegate.api.schemas import AuditEventList, ErrorOut, VerifyOut, audit_event_out, verify_out
from stagegate.api.services import ServicesDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])

MAX_EVENTS = 10_000
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut, "description": "Only auditors and admins read the trail."},
}


@router.get("", summary="Query audit events", responses=_ERRORS)
def query_events(
    _who: Auditor,
    services: ServicesDep,
    actor: Annotated[str | None, Query(max_length=200, description="Events by this user.")] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="e.g. stage.requested, policy.denied.")
    ] = None,
    job: Annotated[str | None, Query(max_length=200, description="A staging id or a job reference.")] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive, with a zone).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (exclusive, with a zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="At most this many, oldest first.")] = 1000,
) -> AuditEventList:
    """Matching events in chain order (oldest first), each with its hashes."""
    events = services.audit.query(actor=actor, action=action, job=job, since=since, until=until, limit=limit)
    return AuditEventList(events=[audit_event_out(e) for e in events])


@router.get("/verify", summary="Verify the audit chain", responses=_ERRORS)
def verify_chain(_who: Auditor, services: ServicesDep) -> VerifyOut:
    """Walk the whole hash chain and report the first altered, missing or relinked event."""
    head = services.audit.head()  # read first: the walk then covers at least up to it
    return verify_out(services.audit.verify(), head)
