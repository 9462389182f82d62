"""/v1/usage: chargeback figures per user or project (moved from the source and from peers,
reused, egressed, held), for
auditors and admins.

The shapes live here rather than in ``api.schemas``: only this route serves them.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from stagegate.api.auth import Auditor
from stagegate.api.schemas import ErrorOut
from stagegate.api.services import ServicesDep
from stagegate.ledger.usage import UsageRow, usage

router = APIRouter(prefix="/v1/usage", tags=["usage"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A time without a zone, or since not before until."},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut, "description": "Only auditors and admins read usage."},
}


class UsageRowOut(BaseModel):
    period: str = Field(description='"2026-11" (month), "2026-11-26" (day) or "all".')
    key: str = Field(description='The user, or the project ("(none)" when there is none).')
    bytes_from_source: int = Field(
        description="Bytes read from the source by stagings completed in the period, summed over the "
        "nodes each copied to (embedded stagings: all their bytes)."
    )
    bytes_from_peers: int = Field(
        description="Bytes those stagings' nodes copied from a peer node that had read them from the "
        "source (fan-out): moved over the cluster's network, not read from the source."
    )
    bytes_from_cache: int = Field(
        description="Bytes those stagings made available by reusing a node's cached copy (a cache hit) "
        "or linking files a node already held: nothing was moved for them."
    )
    bytes_egressed: int = Field(description="Bytes of egresses completed in the period.")
    nvme_gb_hours: float = Field(description="Bytes pinned on nodes / 1e9 x hours, within the period.")
    stagings: int = Field(description="Stagings completed in the period.")
    egresses: int = Field(description="Egresses completed in the period.")


class UsageOut(BaseModel):
    rows: list[UsageRowOut]


def _row_out(row: UsageRow) -> UsageRowOut:
    return UsageRowOut.model_validate(row.to_json())


@router.get("", summary="Usage for chargeback", responses=_ERRORS)
def get_usage(
    _who: Auditor,
    services: ServicesDep,
    by: Annotated[Literal["user", "project"], Query(description="Group by user or by project.")] = "user",
    since: Annotated[datetime | None, Query(description="From this time (inclusive, with a zone).")] = None,
    until: Annotated[
        datetime | None, Query(description="Before this time (exclusive, with a zone); default now.")
    ] = None,
    period: Annotated[
        Literal["month", "day", "all"], Query(description="One row per key per UTC month, day, or all.")
    ] = "month",
) -> UsageOut:
    """Bytes moved from the source, bytes copied from peers, bytes reused from node caches, bytes
    egressed and NVMe GB-hours per (period, user or project), from the audit trail, each byte in
    one column. bytes_from_source: per staging that completed, the bytes of the nodes it copied to
    itself from the source (embedded: all of them); bytes_from_peers: those its nodes copied from
    a peer node; bytes_from_cache: the bytes of its nodes that were cache hits, and files linked
    from a node's cache; bytes_egressed: per completed
    egress; nvme_gb_hours: per service staging and node, bytes / 1e9 x hours pinned from
    `policy.allowed` to `stage.released` (by its owner, or by the service when the pin lease ran
    out) or `stage.failed` (or now), clipped to [since, until) and split at UTC period
    boundaries."""
    rows = usage(services.ledger, by=by, since=since, until=until, period=period)
    return UsageOut(rows=[_row_out(r) for r in rows])
