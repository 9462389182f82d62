"""/v1/egress: move selected checkpoints of a run directory on a node to S3 or an on-prem path.

The API records the egress and queues its task on ``node.<node>``; that node's worker
selects, classifies (the highest of own label, run directory label and the requester's own
lineage by ``job``), asks the policy, copies, verifies, and deletes unselected checkpoints
if asked; a path destination only below the requester's egress root on that node.
Poll ``GET /v1/egress/{id}``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stagegate.api.auth import Authenticated, Submitter
from stagegate.api.schemas import NODE_NAME_PATTERN, ErrorOut, FilterPattern
from stagegate.api.services import ServicesDep
from stagegate.ledger.egresses import Egresses
from stagegate.limits import MAX_FILTER_RULES
from stagegate.requests import BestMode, EgressRequest
from stagegate.states import EgressState

router = APIRouter(prefix="/v1/egress", tags=["egress"])

EgressId = Annotated[str, Path(min_length=1, max_length=200, description="The egress's id.")]


class EgressRequestIn(BaseModel):
    """The wire shape of an :class:`EgressRequest` (bounded, strict: a typo is a 422)."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str = Field(
        min_length=2,
        max_length=4096,
        pattern=r"^/",
        description="Absolute path of the run directory on the node; the worker reads it with its own "
        "permissions and follows no symlinked component.",
    )
    node: str = Field(pattern=NODE_NAME_PATTERN, description="The node whose worker holds run_dir.")
    destination: str = Field(min_length=1, max_length=4096, description="s3://bucket/prefix or a path.")
    latest: int | None = Field(default=None, ge=1, le=100000)
    best: str | None = Field(default=None, min_length=1, max_length=200)
    mode: BestMode | None = None
    names: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=1000
    )
    job: str | None = Field(default=None, min_length=1, max_length=200, description="Lineage job reference.")
    delete_unselected: bool = False
    include: list[FilterPattern] = Field(
        default_factory=list,
        max_length=MAX_FILTER_RULES,
        description="Only the files of the selected checkpoints one of these matches (keys relative to "
        "run_dir; rclone's filter patterns, as for a staging).",
    )
    exclude: list[FilterPattern] = Field(
        default_factory=list, max_length=MAX_FILTER_RULES, description="Leave out the files these match."
    )

    def to_request(self) -> EgressRequest:
        """The kernel's request (``job`` on the wire is its ``job_ref``); raises
        InvalidInputError (a 400) for what the type refuses beyond this body's shape."""
        return EgressRequest(
            run_dir=self.run_dir,
            destination=self.destination,
            latest=self.latest,
            best=self.best,
            mode=self.mode,
            names=tuple(self.names),
            job_ref=self.job,
            delete_unselected=self.delete_unselected,
            node=self.node,
            include=tuple(self.include),
            exclude=tuple(self.exclude),
        )


class EgressOut(BaseModel):
    id: str
    state: str = Field(
        description=f"one of {', '.join(EgressState)}", json_schema_extra={"enum": list(EgressState)}
    )
    user: str
    project: str | None
    job: str | None
    node: str | None
    run_dir: str
    destination: str
    selected: list[str]
    bytes: int
    files: int
    errors: list[str]
    reasons: list[str]
    checksums: dict[str, str]
    created_at: str
    updated_at: str


def _egresses(services: Any) -> Egresses:
    return Egresses(services.ledger, services.lease_seconds)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Egress checkpoints from a node",
    responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
async def create_egress(request: EgressRequestIn, who: Submitter, services: ServicesDep) -> EgressOut:
    """Record the egress and queue it on the node; 202 with its id (state ``pending``)."""

    def submit() -> EgressOut:
        egress, key = _egresses(services).submit(who, request.to_request())
        services.dispatcher.send([key.to_message()])  # after the commit; the reconciler re-sends
        return EgressOut(**egress.to_json())

    return await run_in_threadpool(submit)


@router.get(
    "/{egress_id}",
    summary="Get an egress",
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
def get_egress(egress_id: EgressId, who: Authenticated, services: ServicesDep) -> EgressOut:
    """The egress; someone else's is 404 unless you are an auditor or admin."""
    return EgressOut(**_egresses(services).visible(who, egress_id).to_json())
