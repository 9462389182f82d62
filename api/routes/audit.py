"""/v1/audit: the tamper-evident audit trail, for auditors and admins."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from stagegate.api.auth import Auditor
from stagegate.api.schemas import (
    AuditEventList,
    CheckpointOut,
    ErrorOut,
    HeadOut,
    LatestCheckpointOut,
    VerifyOut,
    audit_event_out,
    head_out,
    verify_out,
)
from stagegate.api.services import ServicesDep
from stagegate.ledger.chain import format_time, parse_head
from stagegate.ledger.log_check import check_latest

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


@router.get("/head", summary="The newest event's SEQ:HASH", responses=_ERRORS)
def chain_head(_who: Auditor, services: ServicesDep) -> HeadOut:
    """What `stagegate audit head` prints: keep it where the database's owner cannot edit it,
    and check later walks against it (`/v1/audit/verify?head=SEQ:HASH`)."""
    return head_out(services.audit.head())


@router.get(
    "/verify",
    summary="Verify the audit chain",
    responses={**_ERRORS, 400: {"model": ErrorOut, "description": "A head that is not SEQ:HASH."}},
)
def verify_chain(
    _who: Auditor,
    services: ServicesDep,
    head: Annotated[
        str | None,
        Query(
            max_length=100,
            description="A head exported earlier (SEQ:HASH): also catch events cut off the end.",
        ),
    ] = None,
) -> VerifyOut:
    """Walk the whole hash chain and report the first altered, missing or relinked event."""
    expected = None if head is None else parse_head(head)
    newest = services.audit.head()  # read first: the walk then covers at least up to it
    return verify_out(services.audit.verify(expected_head=expected), newest)


@router.get("/checkpoint", summary="The latest signed checkpoint", responses=_ERRORS)
def latest_checkpoint(
    _who: Auditor,
    services: ServicesDep,
    verify: Annotated[
        bool, Query(description="Also check every event now in the trail against it (reads the whole trail).")
    ] = False,
) -> LatestCheckpointOut:
    """The newest checkpoint the service signed, with its signature checked by the public key
    the ledger keeps. An auditor checks it against a key they hold with
    `stagegate audit verify --checkpoint FILE --public-key KEY`."""
    latest = services.checkpoints.latest()
    if latest is None:
        return LatestCheckpointOut(checkpoint=None)
    check = check_latest(services.ledger, latest, against_log=verify)
    out = CheckpointOut(
        size=latest.size,
        root=latest.root.hex(),
        time=format_time(latest.time),
        origin=latest.origin,
        key=f"{latest.key_name}+{latest.key_id:08x}",
        public_key=latest.public_key,
        note=latest.note,
        signature_ok=check.signature_ok,
    )
    if not verify:
        return LatestCheckpointOut(checkpoint=out)
    return LatestCheckpointOut(checkpoint=out, consistent=check.consistent, problems=list(check.problems))
