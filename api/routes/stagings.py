"""/v1/stagings: submit, read, list, release and renew stagings.

Ledger calls block (database I/O), so reads and releases are plain ``def`` handlers, which
FastAPI runs in its threadpool. Submission is ``async``: it runs the submit in the threadpool
too, but waits for the plan step's decision without a thread (``api.decision_waits``: one loop
reads every waiting staging together), so a burst of submissions (a job array starting) holds
no pool thread per request for the whole wait, nor reads each staging on its own.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from starlette.concurrency import run_in_threadpool

from stagegate.api.auth import Authenticated, Submitter
from stagegate.api.schemas import (
    DeniedOut,
    ErrorOut,
    RenewRequest,
    StagingList,
    StagingOut,
    StagingRequestIn,
    denied_detail,
    staging_out,
)
from stagegate.api.services import Services, ServicesDep
from stagegate.ledger import Principal, Staging
from stagegate.ledger.pins import checked_ttl
from stagegate.requests import StagingRequest
from stagegate.states import StagingState

router = APIRouter(prefix="/v1/stagings", tags=["stagings"])

StagingId = Annotated[str, Path(min_length=1, max_length=200, description="The staging's id.")]

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No token, or an unknown or revoked one."},
}
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "No such staging, or not yours."},
}


def _submit(
    services: Services, who: Principal, request: StagingRequest, pin_ttl_seconds: float | None
) -> tuple[Staging, bool]:
    ttl = checked_ttl(pin_ttl_seconds, services.pin_ttl, services.pin_ttl_max)
    staging, created, to_send = services.stagings.submit(who, request, pin_ttl_seconds=ttl)
    if to_send:
        # After the commit: a task row exists before its message does. A failed send is logged
        # by the dispatcher and re-sent by the reconciler once the task's lease runs out.
        services.dispatcher.send(key.to_message() for key in to_send)
    return staging, created


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Stage a dataset onto nodes",
    responses={
        200: {"model": StagingOut, "description": "The same idempotency key again: the first staging."},
        400: {"model": ErrorOut, "description": "Bad input: credentials in the URL, an unknown node..."},
        **_AUTH_ERRORS,
        403: {
            "model": DeniedOut,
            "description": "The policy denied it (the reasons), or (a message) the role may not submit or "
            "the source is not one the service may read for you: a local path outside your source roots, "
            "or a scheme the operator has not allowed.",
        },
        422: {"description": "The body does not have the documented shape (e.g. an unknown field)."},
    },
)
async def create_staging(
    request: StagingRequestIn, who: Submitter, services: ServicesDep, response: Response
) -> StagingOut:
    """Record the staging, queue its plan, and wait a little (``STAGEGATE_DECISION_WAIT``, 10 s by
    default) for the classification policy's decision, so a denial comes back as a 403 at once.
    202 with the staging (still ``pending`` if no worker decided in time); 200 for a repeat of an
    ``idempotency_key``."""
    staging, created = await run_in_threadpool(
        _submit, services, who, request.to_request(), request.pin_ttl_seconds
    )
    staging = await services.decision_waits.decision(staging, services.decision_wait)
    if staging.state == StagingState.DENIED:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=denied_detail(staging))
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(services, staging)


def _out(services: Services, staging: Staging) -> StagingOut:
    ids = [staging.id]
    return staging_out(
        staging, services.pins.of(ids).get(staging.id), services.owners.of(ids).get(staging.id)
    )


@router.get("", summary="List stagings", responses=_AUTH_ERRORS)
def list_stagings(
    who: Authenticated,
    services: ServicesDep,
    state: Annotated[StagingState | None, Query(description="Only stagings in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> StagingList:
    """Your stagings, newest first; an auditor's or admin's: everyone's."""
    found = services.staging_views.for_principal(who, state, limit)
    ids = [s.id for s in found]
    leases, owners = services.pins.of(ids), services.owners.of(ids)
    return StagingList(stagings=[staging_out(s, leases.get(s.id), owners.get(s.id)) for s in found])


@router.get("/{staging_id}", summary="Get a staging", responses={**_AUTH_ERRORS, **_NOT_FOUND})
def get_staging(staging_id: StagingId, who: Authenticated, services: ServicesDep) -> StagingOut:
    """A staging with its per-node progress. Someone else's is 404 unless you are an auditor or admin."""
    return _out(services, services.staging_views.visible(who, staging_id))


@router.delete(
    "/{staging_id}",
    summary="Release a staging",
    responses={
        **_AUTH_ERRORS,
        403: {"model": ErrorOut, "description": "Auditors read; they do not release."},
        **_NOT_FOUND,
    },
)
def release_staging(staging_id: StagingId, who: Submitter, services: ServicesDep) -> StagingOut:
    """Unpin the staging's datasets (the nodes may then evict them), or cancel it if still running.
    The owner or an admin may; releasing twice is harmless."""
    try:
        return _out(services, services.stagings.release(who, staging_id))
    except PermissionError as exc:  # the ledger's own check; the role check above comes first
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc


@router.post(
    "/{staging_id}/renew",
    summary="Renew a staging's pin lease",
    responses={
        400: {"model": ErrorOut, "description": "A TTL under a minute or over STAGEGATE_PIN_TTL_MAX."},
        **_AUTH_ERRORS,
        403: {"model": ErrorOut, "description": "Auditors and stewards read; they do not renew."},
        **_NOT_FOUND,
        409: {"model": ErrorOut, "description": "Released, failed or denied: it holds no pin to renew."},
    },
)
def renew_staging(
    staging_id: StagingId, who: Submitter, services: ServicesDep, request: RenewRequest | None = None
) -> StagingOut:
    """Extend the pin lease to now + ``pin_ttl_seconds`` (default: the TTL it had), so the service
    does not release the staging while the job still reads it. The owner or an admin may; audited
    as ``stage.renewed``."""
    ttl = None if request is None else request.pin_ttl_seconds
    try:
        services.pins.renew(who, staging_id, ttl, services.pin_ttl, services.pin_ttl_max)
    except PermissionError as exc:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
    return _out(services, services.staging_views.view(staging_id))
