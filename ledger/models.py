"""The ledger's tables. Rows stay inside the package; callers get dataclasses.

The Alembic migrations create the schema; these models must describe the same tables
(a test compares them).
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from stagegate.owners import OwnerRef


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite stores no zone, so values are normalised to UTC
    before storing and marked UTC when read; PostgreSQL keeps ``timestamptz``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Object keys sort by code point, as Python (and the manifest digest) sorts them. SQLite's
# default BINARY collation already does; PostgreSQL's database collation may not, so keys use "C".
KeyText = Text().with_variant(Text(collation="C"), "postgresql")


# Named constraints, so the migrations can name (and later alter) exactly what the models declare.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {str: Text(), int: BigInteger(), datetime: UTCDateTime()}


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str]
    actor: Mapped[str]
    role: Mapped[str]
    job_ref: Mapped[str | None] = mapped_column(index=True)
    source: Mapped[str]
    destination: Mapped[str]
    manifest_digest: Mapped[str | None]
    files: Mapped[int]
    bytes: Mapped[int]
    policy_version: Mapped[str | None]
    error: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The service's columns (revision 0002); embedded stagings leave them empty.
    project: Mapped[str | None]
    mode: Mapped[str | None] = mapped_column(String(16))
    nodes: Mapped[str | None]  # JSON list of node names
    idempotency_key: Mapped[str | None]
    started_at: Mapped[datetime | None]  # the first byte's time, for the rate
    # Revision 0003: an egress's request as JSON (run dir, node, selection...), for its worker.
    params: Mapped[str | None]
    # Revision 0009: the staging whose plan (manifest, label files) this one shares; None: its own.
    plan_job: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (
        CheckConstraint("kind IN ('stage', 'egress')", name="kind"),
        # One staging per (user, key): a retried submission finds the first one.
        Index("ix_jobs_actor_idempotency_key", "actor", "idempotency_key", unique=True),
    )


class ManifestEntryRow(Base):
    __tablename__ = "manifest_entries"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(KeyText, primary_key=True)
    size: Mapped[int]
    revision: Mapped[str | None]
    version: Mapped[str | None]
    blake3: Mapped[str | None]
    source_checksum: Mapped[str | None]
    verification: Mapped[str | None]
    label: Mapped[str | None]
    # Revision 0002: what a node worker needs to read the object without listing again.
    mtime: Mapped[float | None] = mapped_column(Float)
    checksum_algorithm: Mapped[str | None]
    own_label: Mapped[str | None]  # as the source stores it; ``label`` is the resolved one


class LabelFileRow(Base):
    """A label file a plan read: batch tasks on other nodes re-check it before copying."""

    __tablename__ = "label_files"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    directory: Mapped[str] = mapped_column(KeyText, primary_key=True)
    key: Mapped[str] = mapped_column(KeyText)
    size: Mapped[int]
    revision: Mapped[str | None]
    version: Mapped[str | None]
    mtime: Mapped[float | None] = mapped_column(Float)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256; the token is never kept
    user: Mapped[str]
    role: Mapped[str] = mapped_column(String(16))
    project: Mapped[str | None]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Revision 0007: when a request last presented it (updated at most once a minute).
    last_used_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("role IN ('job', 'scientist', 'steward', 'auditor', 'admin')", name="role"),
    )


class DeclassificationRow(Base):
    """A recorded decision to lower a checkpoint's label (revision 0004); its egress cites it."""

    __tablename__ = "declassifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    node: Mapped[str | None]  # None: embedded mode, a path on this machine
    run_dir: Mapped[str]
    checkpoint: Mapped[str]
    label: Mapped[str]
    reason: Mapped[str]
    actor: Mapped[str]
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_declassifications_run_dir_checkpoint", "run_dir", "checkpoint"),)


class TaskRow(Base):
    """One unit of queued work: a staging's plan, a node's copy batch, a node's finalize.

    The ledger, not the broker, is the source of truth: a task whose lease ran out (its
    worker died, or Redis lost the message) is sent again by the reconciler.
    """

    __tablename__ = "tasks"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    node: Mapped[str] = mapped_column(primary_key=True)  # '' for the plan
    idx: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    key_from: Mapped[str | None] = mapped_column(KeyText)
    key_to: Mapped[str | None] = mapped_column(KeyText)
    files: Mapped[int]
    bytes: Mapped[int]
    files_done: Mapped[int]
    bytes_done: Mapped[int]
    attempts: Mapped[int]
    lease_until: Mapped[datetime | None]
    owner: Mapped[str | None]
    error: Mapped[str | None]
    updated_at: Mapped[datetime]
    # Revision 0011: where a finished copy batch read its bytes, 'source' or a peer node's name.
    origin: Mapped[str | None] = mapped_column(default=None)
    # Revision 0013: the bytes a finished copy batch took from the node's cache (delta staging).
    taken_bytes: Mapped[int | None] = mapped_column(default=None)

    __table_args__ = (
        CheckConstraint("kind IN ('plan', 'copy', 'finalize', 'egress', 'verify')", name="kind"),
        Index("ix_tasks_state_lease_until", "state", "lease_until"),
    )


class NodeRow(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(primary_key=True)
    root: Mapped[str]
    capacity: Mapped[int]
    worker: Mapped[str]  # host:pid of the worker that last said hello
    started_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    # Revision 0011: where its worker serves verified batches to other nodes (None: it does not).
    peer_url: Mapped[str | None] = mapped_column(default=None)


class NodeDatasetRow(Base):
    """A dataset on a node's NVMe, keyed by the manifest digest of what it holds."""

    __tablename__ = "node_datasets"

    node: Mapped[str] = mapped_column(ForeignKey("nodes.name"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str]
    files: Mapped[int]
    bytes: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))  # writing | ready | evicting | deleting
    writer_job: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    last_used: Mapped[datetime]
    # Revision 0005: the published tree's fingerprint (inode, size, mtime, ctime, mode of every
    # entry), checked before a cache hit counts; and when the scrub last re-hashed it.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    scrubbed_at: Mapped[datetime | None]
    # Revision 0010: with files shared by hard links (delta staging), the bytes no older dataset
    # on the node holds (its share of the disk) and those no other holds (what its eviction
    # frees); None: it shares nothing, ``bytes`` is both.
    unique_bytes: Mapped[int | None]
    sole_bytes: Mapped[int | None]
    # Revision 0013: while it is written, the ready datasets (a JSON list of digests) admission
    # counted on it taking files from; they are held as if pinned until it is ready.
    takes_from: Mapped[str | None] = mapped_column(default=None)


class QuarantinedDatasetRow(Base):
    """A cached copy found altered: moved aside, never a hit again, deleted once the stagings
    that held it (``holders``, a JSON list of job ids) have let go of it."""

    __tablename__ = "quarantined_datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    node: Mapped[str] = mapped_column(index=True)
    digest: Mapped[str] = mapped_column(String(64))
    path: Mapped[str]  # where it lies now, beside the datasets
    bytes: Mapped[int]
    reason: Mapped[str]
    holders: Mapped[str]
    quarantined_at: Mapped[datetime]


class PlanShareRow(Base):
    """One plan shared by identical requests (revision 0009): led by ``job_id`` while
    ``planning`` (under a lease, so a dead planner's plan is taken over), then ``planned`` with
    its ``outcome`` (JSON: digest, totals, decision, node shares) for ``planned_at`` + the
    freshness window. ``used_at`` (revision 0012): the last request that led or followed it;
    the workers re-verify the plans used lately (``workers.plan_recheck``), moving
    ``planned_at`` to the start of a listing that found the source unchanged."""

    __tablename__ = "plan_shares"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16))  # planning | planned
    owner: Mapped[str | None]
    lease_until: Mapped[datetime]
    planned_at: Mapped[datetime | None]
    outcome: Mapped[str | None]
    used_at: Mapped[datetime | None]


class PlanWaiterRow(Base):
    """A staging waiting for a shared plan that is being made (revision 0009)."""

    __tablename__ = "plan_waiters"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class DatasetLabelCheckRow(Base):
    """When the label re-scan last read a cached dataset's source labels (revision 0009); a
    ``quarantined_at`` dataset's labels rose above what the zone accepts: never pinned again,
    evicted once no staging holds it."""

    __tablename__ = "dataset_label_checks"

    node: Mapped[str] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    checked_at: Mapped[datetime]
    quarantined_at: Mapped[datetime | None]
    reason: Mapped[str | None]


class PinRow(Base):
    """A staging holding a node's dataset: a pinned dataset is never evicted."""

    __tablename__ = "pins"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    node: Mapped[str] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_pins_node_digest", "node", "digest"),)


class PinLeaseRow(Base):
    """How long a service staging may hold its pins (revision 0007): past ``expires_at`` the
    service releases it, as ``stagegate release`` would. Renewing moves ``expires_at``."""

    __tablename__ = "pin_leases"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    ttl_seconds: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    renewed_at: Mapped[datetime | None]
    renewals: Mapped[int]

    @classmethod
    def starting(cls, job_id: str, ttl_seconds: int, now: datetime) -> "PinLeaseRow":
        """The lease a submission adds in its own transaction: ``ttl_seconds`` from ``now``."""
        return cls(
            job_id=job_id,
            ttl_seconds=ttl_seconds,
            expires_at=now + timedelta(seconds=ttl_seconds),
            renewed_at=None,
            renewals=0,
        )


class PinOwnerRow(Base):
    """The Kubernetes Pod or Job whose end releases a service staging (revision 0008). Checked
    at most every ``STAGEGATE_OWNER_CHECK_SECONDS``: ``next_check_at`` is claimed by a conditional
    update, so however many reconcilers run, one asks the Kubernetes API per interval."""

    __tablename__ = "pin_owners"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(253))
    uid: Mapped[str] = mapped_column(String(36))
    next_check_at: Mapped[datetime] = mapped_column(index=True)
    checked_at: Mapped[datetime | None]
    # Checks in a row that could not tell (API down, refused, garbled): never a release.
    failures: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(String(500))

    @classmethod
    def starting(cls, job_id: str, owner: OwnerRef, now: datetime) -> "PinOwnerRow":
        """The row a submission adds in its own transaction: due for a first check at once."""
        return cls(
            job_id=job_id,
            kind=owner.kind,
            namespace=owner.namespace,
            name=owner.name,
            uid=owner.uid,
            next_check_at=now,
            checked_at=None,
            failures=0,
            last_error=None,
        )

    def owner(self) -> OwnerRef:
        return OwnerRef(self.kind, self.namespace, self.name, self.uid)  # type: ignore[arg-type]  # stored checked


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    # Assigned by the trail (previous + 1 under a lock), never by the database: sequences and
    # autoincrement leave gaps on rollback, and a gap must mean a deleted row.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str]
    role: Mapped[str]
    action: Mapped[str]
    job_id: Mapped[str | None] = mapped_column(String(36))
    job_ref: Mapped[str | None]
    source: Mapped[str]
    destination: Mapped[str]
    bytes: Mapped[int]
    files: Mapped[int]
    manifest_digest: Mapped[str | None]
    policy_version: Mapped[str | None]
    decision: Mapped[str | None] = mapped_column(String(8))
    reasons: Mapped[str]  # JSON list, canonical form
    details: Mapped[str]  # JSON object, canonical form
    # Unique: two events naming the same predecessor would be a fork, whatever the lock did.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("decision IS NULL OR decision IN ('allow', 'deny')", name="decision"),
        Index(None, "actor"),
        Index(None, "action"),
        Index(None, "job_id"),
        Index(None, "job_ref"),
        Index(None, "time"),
    )


class AuditTreeNodeRow(Base):
    """One perfect subtree of the RFC 6962 tree over the audit events (revision 0006): leaves
    ``[idx << level, (idx + 1) << level)``. Level 0 is one event's leaf hash. Written once, when
    the tree is extended to sign a checkpoint; proofs read O(log n) of them."""

    __tablename__ = "audit_tree_nodes"

    level: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpointRow(Base):
    """A signed checkpoint of the audit trail (revision 0006): the note as published, and the
    public key that checks it, kept so a rotated key leaves old checkpoints verifiable."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime]
    origin: Mapped[str]
    key_name: Mapped[str]
    key_id: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[str]
    note: Mapped[str]
