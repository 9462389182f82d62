"""/v1/declassifications: a steward (or admin) lowers a checkpoint's label, with a reason.

A checkpoint's label only rises; this is the one way down, and it is a separate act by a role
allowed to do it, never the requester's own (a scientist is refused). The record is kept
with its ``label.declassified`` audit event; the next egress of that checkpoint uses it and
cites it, unless the checkpoint changed after it was made.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stagegate.api.auth import require
from stagegate.api.schemas import NODE_NAME_PATTERN, ErrorOut
from stagegate.api.services import ServicesDep
from stagegate.ledger import Principal
from stagegate.ledger.declassifications import MAX_REASON, Declassifications

router = APIRouter(prefix="/v1/declassifications", tags=["declassifications"])

Steward = Annotated[Principal, Depends(require("steward", "admin"))]


class DeclassificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str = Field(pattern=NODE_NAME_PATTERN, description="The node whose worker holds run_dir.")
    run_dir: str = Field(min_length=2, max_length=4096, pattern=r"^/", description="The run directory.")
    checkpoint: str = Field(min_length=1, max_length=255, description="The checkpoint's name in run_dir.")
    label: str = Field(min_length=1, max_length=64, description="The label it may go out at, e.g. public.")
    reason: str = Field(
        min_length=1, max_length=MAX_REASON, description="Why it may: kept in the audit trail."
    )


class DeclassificationOut(BaseModel):
    id: str
    node: str | None
    run_dir: str
    checkpoint: str
    label: str
    reason: str
    actor: str
    role: str
    created_at: str


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Declassify a checkpoint",
    responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
async def declassify(body: DeclassificationIn, who: Steward, services: ServicesDep) -> DeclassificationOut:
    """Record that the checkpoint may go out at ``label``; 201 with the record."""

    def record() -> DeclassificationOut:
        made = Declassifications(services.ledger).record(
            actor=who.user,
            role=who.role,
            node=body.node,
            run_dir=body.run_dir,
            checkpoint=body.checkpoint,
            label=body.label,
            reason=body.reason,
        )
        return DeclassificationOut(**made.to_json())  # type: ignore[arg-type]

    return await run_in_threadpool(record)
