"""The HTTP contract's JSON shapes (see the service contract), and conversions from the
ledger's dataclasses. Pure: no I/O.

Requests are strict (unknown fields are refused, names and sizes are bounded) so a typo is an
error rather than a silently ignored option. Responses document the states they can hold but
do not validate them against a fixed list: a state the ledger adds later must not turn every
read into a 500.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from stagegate.ledger import AuditEvent, ChainVerdict, NodeView, Staging
from stagegate.ledger.chain import format_head
from stagegate.ledger.pins import Lease
from stagegate.limits import MAX_FILTER_PATTERN_CHARS, MAX_FILTER_RULES
from stagegate.owners import MAX_NAME, MAX_NAMESPACE, OwnerKind, OwnerRef
from stagegate.requests import StagingMode, StagingRequest
from stagegate.states import DatasetState, NodeStagingState, StagingState

NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
MAX_NODES = 64
STAGING_STATES = tuple(StagingState)
NODE_STAGING_STATES = tuple(NodeStagingState)
DATASET_STATES = tuple(DatasetState)

Mode = StagingMode
NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME_PATTERN)]
# Bounded here for the wire; what a pattern may say is the request's rule (a 400 naming it).
FilterPattern = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILTER_PATTERN_CHARS)]


def _states(values: tuple[str, ...], what: str) -> Any:
    return Field(description=f"{what}: one of {', '.join(values)}", json_schema_extra={"enum": list(values)})


def _utc(moment: datetime) -> datetime:
    # The ledger returns aware UTC times; a naive one is UTC too, and is said so explicitly.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- requests ------------------------------------------------------------------------------


class OwnerIn(BaseModel):
    """A Pod or Job by namespace, name and uid (checked as Kubernetes checks them: 400 if not)."""

    model_config = ConfigDict(extra="forbid")

    kind: OwnerKind
    namespace: str = Field(min_length=1, max_length=MAX_NAMESPACE)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    uid: str = Field(min_length=36, max_length=36, description="metadata.uid")

    def to_owner(self) -> OwnerRef:
        return OwnerRef(self.kind, self.namespace, self.name, self.uid)


class StagingRequestIn(BaseModel):
    """Stage ``source`` onto ``nodes``: the wire shape of a :class:`stagegate.requests.StagingRequest`
    (bounded and strict, so a typo is a 422; the type's own rules are a 400)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "s3://datasets/imagenet/train/",
                    "nodes": ["gpu-01", "gpu-02"],
                    "mode": "replicate",
                    "job": "slurm-4242",
                    "idempotency_key": "slurm-4242-imagenet",
                }
            ]
        },
    )

    source: str = Field(
        min_length=1,
        max_length=4096,
        description="Where the data lives (s3://bucket/prefix/, a path...). Without credentials: "
        "workers use their own.",
    )
    nodes: list[NodeName] = Field(
        min_length=1,
        max_length=MAX_NODES,
        description=f"The nodes to stage onto: 1 to {MAX_NODES} distinct names of registered nodes.",
    )
    mode: Mode = Field(
        default="replicate",
        description="replicate: every node gets the whole dataset; shard: the nodes split it.",
    )
    job: str | None = Field(
        default=None, min_length=1, max_length=200, description="Your job's reference (e.g. a Slurm job id)."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Send the same key again (say, after a timeout) to get the first staging back "
        "instead of a new one.",
    )

    pin_ttl_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long the nodes hold the data for you, from now: after it the service releases "
        "the staging (renew with POST /v1/stagings/{id}/renew). Default: the operator's "
        "STAGEGATE_PIN_TTL; more than STAGEGATE_PIN_TTL_MAX is refused (400).",
    )

    include: list[FilterPattern] = Field(
        default_factory=list,
        max_length=MAX_FILTER_RULES,
        description="Stage only the keys one of these matches (rclone's filter patterns: * within a "
        "path segment, ** across, ?, [...], {a,b}; a leading / anchors at the source's root). Label "
        "files are read whatever the filters say.",
    )
    exclude: list[FilterPattern] = Field(
        default_factory=list,
        max_length=MAX_FILTER_RULES,
        description="Leave out the keys these match (tried after every include, as in rclone).",
    )
    owner: OwnerIn | None = Field(
        default=None,
        description="The Kubernetes Pod or Job this staging serves: once the service sees it gone (deleted, "
        "ended, or replaced by another object of the same name), it releases the staging. The uid is the "
        "object's metadata.uid (the downward API's), so a pod recreated under the name is not the owner.",
    )

    @field_validator("nodes")
    @classmethod
    def _distinct(cls, nodes: list[str]) -> list[str]:
        repeated = sorted({n for n in nodes if nodes.count(n) > 1})
        if repeated:
            raise PydanticCustomError(
                "duplicate_nodes",
                "nodes must be distinct; named more than once: {repeated}",
                {"repeated": ", ".join(repeated)},
            )
        return nodes

    def to_request(self) -> StagingRequest:
        return StagingRequest(
            source=self.source,
            nodes=tuple(self.nodes),
            mode=self.mode,
            job_ref=self.job,
            idempotency_key=self.idempotency_key,
            include=tuple(self.include),
            exclude=tuple(self.exclude),
            owner=None if self.owner is None else self.owner.to_owner(),
        )


class RenewRequest(BaseModel):
    """Extend a staging's pin lease to now + ``pin_ttl_seconds``."""

    model_config = ConfigDict(extra="forbid")

    pin_ttl_seconds: float | None = Field(
        default=None, gt=0, description="The new TTL from now; default: the TTL it had."
    )


# -- responses -----------------------------------------------------------------------------


class PinOut(BaseModel):
    """How long the staging's nodes hold its data: the lease the service ends it by."""

    ttl_seconds: int
    expires_at: datetime = Field(description="When the service releases it unless renewed first.")
    renewed_at: datetime | None
    renewals: int


class ProgressOut(BaseModel):
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate_bytes_per_s: float | None = Field(description="Recent copy rate; null until bytes move.")
    eta_seconds: float | None = Field(description="Estimated seconds to go; null until known.")
    listed_objects: int | None = Field(
        default=None, description="While planning: objects listed from the source so far; else null."
    )
    listed_bytes: int | None = Field(default=None, description="While planning: their bytes; else null.")


class NodeStagingOut(BaseModel):
    node: str
    state: str = _states(NODE_STAGING_STATES, "This node's part")
    path: str | None = Field(description="Where the dataset lies on the node, once admitted.")
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    cache_hit: bool = Field(description="The node already held (or another staging was writing) it.")


class StagingOut(BaseModel):
    id: str
    state: str = _states(STAGING_STATES, "The staging's state")
    source: str
    mode: str
    job: str | None
    user: str
    project: str | None
    created_at: datetime
    updated_at: datetime
    digest: str | None = Field(description="The manifest's digest, once planned.")
    progress: ProgressOut
    nodes: list[NodeStagingOut]
    errors: list[str]
    reasons: list[str] = Field(description="Why the policy denied it, when it did.")
    pin: PinOut | None = Field(
        default=None, description="Its pin lease; null for a staging from before leases existed."
    )
    owner: OwnerIn | None = Field(default=None, description="The Pod or Job whose end releases it, if any.")


class StagingList(BaseModel):
    stagings: list[StagingOut]


class DeniedDetail(BaseModel):
    message: str
    reasons: list[str]
    staging: StagingOut


class DeniedOut(BaseModel):
    """403 body when the classification policy denied the staging."""

    detail: DeniedDetail


class CachedDatasetOut(BaseModel):
    digest: str
    path: str
    bytes: int
    files: int
    state: str = _states(DATASET_STATES, "On the node")
    pins: int = Field(description="Stagings holding it; a pinned dataset is never evicted.")
    last_used: datetime


class NodeOut(BaseModel):
    name: str
    root: str
    capacity: int
    used: int
    pinned: int
    free: int
    last_heartbeat: datetime
    alive: bool = Field(
        description="Its worker heartbeated within the liveness window (15 s: three heartbeats of 5 s)."
    )
    datasets: list[CachedDatasetOut]


class NodeList(BaseModel):
    nodes: list[NodeOut]


class AuditEventOut(BaseModel):
    """One audit event exactly as hashed: recomputing ``hash`` from the other fields (with
    ``time`` as given here) checks it."""

    seq: int
    time: str = Field(description="UTC, in the exact form that was hashed.")
    actor: str
    role: str
    action: str
    job_id: str | None
    job_ref: str | None
    source: str
    destination: str
    bytes: int
    files: int
    manifest_digest: str | None
    policy_version: str | None
    decision: str | None
    reasons: list[str]
    details: dict[str, object]
    prev_hash: str
    hash: str


class AuditEventList(BaseModel):
    events: list[AuditEventOut]


class VerifyOut(BaseModel):
    ok: bool = Field(description="The whole chain is intact.")
    checked: int = Field(description="Events found good (before the first problem, if any).")
    head: str | None = Field(
        description="SEQ:HASH of the newest event when the walk began (as `stagegate audit head` "
        "prints it): keep it somewhere safe to anchor later checks. Null for an empty trail."
    )
    problem: str | None = Field(description="The first problem found, and where; null when ok.")


class HeadOut(BaseModel):
    head: str | None = Field(
        description="SEQ:HASH of the newest event (as `stagegate audit head` prints it). Null for "
        "an empty trail."
    )


class CheckpointOut(BaseModel):
    """A signed checkpoint of the audit trail (C2SP tlog-checkpoint in a signed note)."""

    size: int = Field(description="Events 1 to size are covered.")
    root: str = Field(description="The RFC 6962 Merkle root of those events, hex.")
    time: str = Field(description="When it was signed, UTC.")
    origin: str = Field(description="The log's name, the note's first line.")
    key: str = Field(description="NAME+ID of the key that signed it.")
    public_key: str = Field(description="That key's public half, NAME+ID+BASE64, as the ledger keeps it.")
    note: str = Field(description="The signed note exactly as published: keep it to verify against later.")
    signature_ok: bool = Field(description="The note's signature checks with the kept public key.")


class LatestCheckpointOut(BaseModel):
    checkpoint: CheckpointOut | None = Field(description="The newest checkpoint; null before the first.")
    consistent: bool | None = Field(
        default=None,
        description="With verify=true: whether every event now in the trail still hashes to it "
        "(the whole trail is read); null when not asked.",
    )
    problems: list[str] = Field(
        default_factory=list, description="With verify=true: what broke, if anything."
    )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, or unavailable")
    checks: dict[str, str] = Field(description="Each dependency (ledger, broker): ok or unavailable.")


class ErrorOut(BaseModel):
    detail: str


# -- conversions ---------------------------------------------------------------------------


def pin_out(lease: Lease | None) -> PinOut | None:
    if lease is None:
        return None
    return PinOut(
        ttl_seconds=lease.ttl_seconds,
        expires_at=_utc(lease.expires_at),
        renewed_at=None if lease.renewed_at is None else _utc(lease.renewed_at),
        renewals=lease.renewals,
    )


def staging_out(staging: Staging, lease: Lease | None = None, owner: OwnerRef | None = None) -> StagingOut:
    p = staging.progress
    return StagingOut(
        id=staging.id,
        state=staging.state,
        source=staging.source,
        mode=staging.mode,
        job=staging.job,
        user=staging.user,
        project=staging.project,
        created_at=_utc(staging.created_at),
        updated_at=_utc(staging.updated_at),
        digest=staging.digest,
        progress=ProgressOut(
            files_done=p.files_done,
            files_total=p.files_total,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            rate_bytes_per_s=p.rate_bytes_per_s,
            eta_seconds=p.eta_seconds,
            listed_objects=p.listed_objects,
            listed_bytes=p.listed_bytes,
        ),
        nodes=[
            NodeStagingOut(
                node=n.node,
                state=n.state,
                path=n.path,
                files_done=n.files_done,
                files_total=n.files_total,
                bytes_done=n.bytes_done,
                bytes_total=n.bytes_total,
                cache_hit=n.cache_hit,
            )
            for n in staging.nodes
        ],
        errors=list(staging.errors),
        reasons=list(staging.reasons),
        pin=pin_out(lease),
        owner=None if owner is None else OwnerIn(**owner.to_json()),  # type: ignore[arg-type]  # kind checked
    )


def denied_detail(staging: Staging) -> dict[str, object]:
    """The ``detail`` of a 403 for a denied staging, as JSON."""
    reasons = list(staging.reasons)
    message = "denied by the classification policy" + (f": {'; '.join(reasons)}" if reasons else "")
    detail = DeniedDetail(message=message, reasons=reasons, staging=staging_out(staging))
    return detail.model_dump(mode="json")


def node_out(node: NodeView) -> NodeOut:
    return NodeOut(
        name=node.name,
        root=node.root,
        capacity=node.capacity,
        used=node.used,
        pinned=node.pinned,
        free=node.free,
        last_heartbeat=_utc(node.last_heartbeat),
        alive=node.alive,
        datasets=[
            CachedDatasetOut(
                digest=d.digest,
                path=d.path,
                bytes=d.bytes,
                files=d.files,
                state=d.state,
                pins=d.pins,
                last_used=_utc(d.last_used),
            )
            for d in node.datasets
        ],
    )


def audit_event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(event.to_json())


def _head_text(head: tuple[int, str] | None) -> str | None:
    return None if head is None else format_head(head)


def head_out(head: tuple[int, str] | None) -> HeadOut:
    return HeadOut(head=_head_text(head))


def verify_out(verdict: ChainVerdict, head: tuple[int, str] | None) -> VerifyOut:
    problem = None
    if not verdict.intact:
        problem = verdict.problem or "problem"
        if verdict.first_bad_seq is not None:
            problem += f" at seq {verdict.first_bad_seq}"
        if verdict.detail:
            problem += f": {verdict.detail}"
    return VerifyOut(
        ok=verdict.intact,
        checked=verdict.checked,
        head=_head_text(head),
        problem=problem,
    )
