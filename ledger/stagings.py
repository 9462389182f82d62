"""The service's stagings: submitted, planned, admitted to nodes, completed, released.

Every state change and the audit event telling of it commit in one transaction, so the
trail holds exactly one ``stage.completed`` per staging however often a step is retried or
repeated by the reconciler. Functions return the tasks the caller must send to the broker
*after* the commit: a task row exists before any message does.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.confinement import SourceRules
from stagegate.errors import ExistsError, InvalidInputError, NotFoundError
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import job_event
from stagegate.ledger.models import (
    AuditEventRow,
    JobRow,
    NodeDatasetRow,
    NodeRow,
    PinLeaseRow,
    PinRow,
    TaskRow,
)
from stagegate.ledger.nodes import dataset_path, held_in, require_known
from stagegate.ledger.redact import redact_text
from stagegate.ledger.tasks import BatchRange, TaskKey, Tasks, new_task
from stagegate.ledger.tokens import Principal
from stagegate.states import STAGING_TERMINAL, DatasetState, NodeStagingState, StagingState, TaskState
from stagegate.urls import refuse_credentials

Mode = Literal["replicate", "shard"]
TERMINAL = STAGING_TERMINAL
SEES_ALL = ("auditor", "admin")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node: str
    state: str  # pending | transferring | ready | failed | released
    path: str | None
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    cache_hit: bool


@dataclass(frozen=True, slots=True)
class StagingProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate_bytes_per_s: float | None
    eta_seconds: float | None


@dataclass(frozen=True, slots=True)
class Staging:
    id: str
    state: str
    source: str
    mode: str
    job: str | None
    user: str
    role: str
    project: str | None
    created_at: datetime
    updated_at: datetime
    digest: str | None
    progress: StagingProgress
    nodes: list[NodeStatus]
    errors: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NodePortion:
    """What one node will hold: its share of the plan, and the batches that copy it."""

    node: str
    digest: str
    files: int
    bytes: int
    batches: Sequence[BatchRange]


@dataclass(frozen=True, slots=True)
class Admitted:
    state: str  # transferring | ready | failed
    to_send: list[TaskKey]
    error: str | None = None


def destination_of(nodes: Sequence[str]) -> str:
    return "nodes:" + ",".join(nodes)


def _now() -> datetime:
    return datetime.now(UTC)


class Stagings:
    """Stagings submitted to the service, in one ledger."""

    def __init__(
        self, ledger: Ledger, lease_seconds: float = 120.0, sources: SourceRules | None = None
    ) -> None:
        self._ledger = ledger
        # What requesters may have the workers read; by default S3 only (see stagegate.confinement).
        self._sources = sources or SourceRules()
        self._tasks = Tasks(ledger, lease_seconds)

    # -- the API's side ------------------------------------------------------------------

    def submit(
        self,
        who: Principal,
        *,
        source: str,
        nodes: Sequence[str],
        mode: Mode = "replicate",
        job_ref: str | None = None,
        idempotency_key: str | None = None,
        pin_ttl_seconds: int | None = None,
    ) -> tuple[Staging, bool, list[TaskKey]]:
        """Record a staging and its plan task; (staging, created, tasks to send).

        The same ``idempotency_key`` from the same user returns the first staging, created False
        (its pin lease unchanged). With ``pin_ttl_seconds`` its pins are leased for that long
        from now (``ledger.pins``); without, they last until released.
        """
        refuse_credentials(source, "source URL")
        self._sources.check(source, who.user, who.project)
        if mode not in ("replicate", "shard"):
            raise InvalidInputError(f"mode must be replicate or shard, not {mode!r}")
        if not nodes or len(set(nodes)) != len(nodes):
            raise InvalidInputError("nodes must name at least one node, each once")
        if idempotency_key is not None:
            existing = self._by_idempotency_key(who.user, idempotency_key)
            if existing is not None:
                return self._same_request(existing, source, nodes, mode), False, []
        with self._ledger.read_session() as session, session.begin():
            require_known(session, nodes)
        now = _now()
        job = JobRow(
            id=str(uuid.uuid4()),
            kind="stage",
            state=StagingState.PENDING,
            actor=who.user,
            role=who.role,
            project=who.project,
            job_ref=job_ref,
            source=source,
            destination=destination_of(nodes),
            manifest_digest=None,
            files=0,
            bytes=0,
            policy_version=None,
            error=None,
            created_at=now,
            updated_at=now,
            mode=mode,
            nodes=json.dumps(list(nodes)),
            idempotency_key=idempotency_key,
            started_at=None,
        )
        plan = TaskKey(job.id, "plan", "", 0)
        try:
            with self._ledger.sessions.begin() as session:
                session.add(job)
                if pin_ttl_seconds is not None:
                    session.add(PinLeaseRow.starting(job.id, pin_ttl_seconds, now))
                session.add(new_task(plan, TaskState.QUEUED, lease=self._tasks.lease.total_seconds()))
                session.flush()
                AuditTrail.append_in(
                    session.connection(), job_event(job, AuditAction.STAGE_REQUESTED, details={"mode": mode})
                )
        except IntegrityError as exc:
            # The same key submitted twice at once: the other request won; answer with its staging.
            if idempotency_key is not None:
                existing = self._by_idempotency_key(who.user, idempotency_key)
                if existing is not None:
                    return self._same_request(existing, source, nodes, mode), False, []
            raise ExistsError(f"staging {job.id} already exists") from exc
        return self.view(job.id), True, [plan]

    def _same_request(self, job_id: str, source: str, nodes: Sequence[str], mode: str) -> Staging:
        """The staging a repeated key names, if the request is the same; a different request
        under a used key is a client bug, refused rather than silently answered."""
        staging = self.view(job_id)
        if (staging.source, [n.node for n in staging.nodes], staging.mode) != (source, list(nodes), mode):
            raise ExistsError(
                f"idempotency key already used for staging {job_id} with a different source, nodes or mode"
            )
        return staging

    def _by_idempotency_key(self, user: str, key: str) -> str | None:
        with self._ledger.read_session() as session, session.begin():
            return session.scalar(
                select(JobRow.id).where(JobRow.actor == user, JobRow.idempotency_key == key)
            )

    def visible(self, who: Principal, job_id: str) -> Staging:
        """The staging, if ``who`` may see it; others' stagings are NotFound, not Forbidden, so
        their existence does not leak."""
        staging = self.view(job_id)
        if who.role not in SEES_ALL and staging.user != who.user:
            raise NotFoundError(f"no staging {job_id}")
        return staging

    def for_principal(self, who: Principal, state: str | None = None, limit: int = 100) -> list[Staging]:
        with self._ledger.read_session() as session, session.begin():
            statement = select(JobRow.id).where(JobRow.kind == "stage", JobRow.mode.is_not(None))
            if who.role not in SEES_ALL:
                statement = statement.where(JobRow.actor == who.user)
            if state is not None:
                statement = statement.where(JobRow.state == state)
            ids = list(session.scalars(statement.order_by(JobRow.created_at.desc()).limit(limit)))
        return [self.view(i) for i in ids]

    def release(self, who: Principal, job_id: str) -> Staging:
        """Unpin the staging's datasets (they become evictable), or cancel it if still running."""
        self.visible(who, job_id)
        if who.role == "auditor":
            raise PermissionError("auditors read; they do not release stagings")
        with self._ledger.sessions.begin() as session:
            self.release_locked(session, self._lock(session, job_id), {"by": who.user})
        return self.view(job_id)

    def release_locked(self, session: Session, job: JobRow, details: dict[str, object]) -> bool:
        """Release ``job``, whose row the caller holds locked (``ledger.pins`` expires leases
        through this); ``details`` say by whom and why. False if nothing was held any more."""
        if job.state in (StagingState.RELEASED, StagingState.DENIED, StagingState.FAILED):
            return False  # nothing is pinned or running; its outcome stays on record
        was = job.state
        self._let_go(session, job, keep_for_others=True)
        job.state, job.updated_at = StagingState.RELEASED, _now()
        session.flush()
        AuditTrail.append_in(
            session.connection(), job_event(job, AuditAction.STAGE_RELEASED, details={**details, "was": was})
        )
        return True

    # -- the workers' side ---------------------------------------------------------------

    def job(self, job_id: str) -> JobRow:
        with self._ledger.read_session() as session, session.begin():
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no staging {job_id}")
            session.expunge(row)
            return row

    def begin_planning(self, job_id: str) -> bool:
        """pending -> planning; False if the staging is past planning (a repeated message)."""
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_((StagingState.PENDING, StagingState.PLANNING)))
                .values(state=StagingState.PLANNING, updated_at=_now())
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def record_plan(self, job_id: str, digest: str, files: int, nbytes: int, policy_version: str) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(manifest_digest=digest, files=files, bytes=nbytes, policy_version=policy_version)
            )

    def deny(
        self, job_id: str, plan: TaskKey, owner: str, reasons: Sequence[str], details: dict[str, object]
    ) -> None:
        with self._ledger.sessions.begin() as session:
            job = self._lock(session, job_id)
            if job.state != StagingState.PLANNING:
                return
            job.state, job.updated_at = StagingState.DENIED, _now()
            job.error = redact_text("; ".join(reasons))
            self._tasks.finish_in(session, plan, owner, 0, 0)
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(
                    job, AuditAction.POLICY_DENIED, decision="deny", reasons=tuple(reasons), details=details
                ),
            )

    def admit(
        self,
        job_id: str,
        plan: TaskKey,
        owner: str,
        portions: Sequence[NodePortion],
        details: dict[str, object],
    ) -> Admitted:
        """The policy allowed the staging: pin what each node already holds, admit (evicting as
        needed) what it must copy, create the copy tasks. All nodes or none: a node without
        room fails the staging, and nothing is evicted for it."""
        try:
            return self._admit(job_id, plan, owner, portions, details)
        except NoRoomError as exc:
            with self._ledger.sessions.begin() as session:
                job = self._lock(session, job_id)
                if job.state != StagingState.PLANNING:
                    return Admitted(job.state, [])
                AuditTrail.append_in(
                    session.connection(),
                    job_event(job, AuditAction.POLICY_ALLOWED, decision="allow", details=details),
                )
                self._tasks.finish_in(session, plan, owner, 0, 0)
                self._fail_locked(session, job, f"not admitted: {exc}")
            return Admitted(StagingState.FAILED, [], str(exc))

    def _admit(
        self,
        job_id: str,
        plan: TaskKey,
        owner: str,
        portions: Sequence[NodePortion],
        details: dict[str, object],
    ) -> Admitted:
        now = _now()
        with self._ledger.sessions.begin() as session:
            job = self._lock(session, job_id)
            if job.state != StagingState.PLANNING:
                return Admitted(job.state, [])
            roots = dict(session.execute(select(NodeRow.name, NodeRow.root)).all())
            capacities = dict(session.execute(select(NodeRow.name, NodeRow.capacity)).all())
            hits: list[str] = []
            copied: list[str] = []  # nodes where this staging writes the dataset itself
            for portion in portions:
                node = portion.node
                existing = session.get(NodeDatasetRow, (node, portion.digest), with_for_update=True)
                if existing is not None and existing.state == DatasetState.DELETING:
                    raise RetryLaterError(f"node {node} is deleting this dataset right now")
                if existing is not None and existing.state in (DatasetState.READY, DatasetState.EVICTING):
                    existing.state, existing.last_used = (
                        DatasetState.READY,
                        now,
                    )  # a hit saves it from eviction
                    hits.append(node)
                    # It counts once the node's worker has checked the copy against its
                    # fingerprint; the share's key range lets it copy afresh if the check fails.
                    session.add(
                        new_task(TaskKey(job.id, "verify", node, 0), TaskState.WAITING, share(portion))
                    )
                elif existing is None:
                    copied.append(node)
                    evict = choose_evictions(node, capacities[node], held_in(session, node), portion.bytes)
                    if evict:
                        session.execute(
                            update(NodeDatasetRow)
                            .where(NodeDatasetRow.node == node, NodeDatasetRow.digest.in_(evict))
                            .values(state=DatasetState.EVICTING)
                        )
                    session.add(
                        NodeDatasetRow(
                            node=node,
                            digest=portion.digest,
                            path=dataset_path(roots[node], portion.digest),
                            files=portion.files,
                            bytes=portion.bytes,
                            state=DatasetState.WRITING,
                            writer_job=job.id,
                            created_at=now,
                            last_used=now,
                        )
                    )
                    for idx, batch in enumerate(portion.batches):
                        session.add(new_task(TaskKey(job.id, "copy", node, idx), TaskState.WAITING, batch))
                    session.add(new_task(TaskKey(job.id, "finalize", node, 0), TaskState.WAITING))
                # else: another staging is writing it right now; this one waits for it.
                session.add(PinRow(job_id=job.id, node=node, digest=portion.digest, created_at=now))
            self._tasks.finish_in(session, plan, owner, 0, 0)
            node_bytes = {q.node: q.bytes for q in portions}
            job.state, job.updated_at, job.started_at = StagingState.TRANSFERRING, now, now
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(
                    job,
                    AuditAction.POLICY_ALLOWED,
                    decision="allow",
                    # What each node now holds for this staging (pinned from here until release):
                    # usage reports bill NVMe byte-hours from it.
                    # Usage tells bytes moved from the source ("copied") from bytes reused.
                    details={**details, "cache_hits": hits, "copied": copied, "node_bytes": node_bytes},
                ),
            )
            # Every node a hit: ready in the same commit, so nobody ever sees it "transferring".
            self._complete_locked(session, job)
        return Admitted(self.job(job_id).state, self._tasks.next_to_send(job_id))

    def dataset_ready(
        self, job_id: str, finalize: TaskKey, owner: str, fingerprint: str | None = None
    ) -> list[str]:
        """A node finished writing: its dataset is ready, sealed with ``fingerprint``. Returns the
        stagings that pin it (they may now be complete)."""
        with self._ledger.sessions.begin() as session:
            pin = session.scalar(select(PinRow).where(PinRow.job_id == job_id, PinRow.node == finalize.node))
            digest = pin.digest if pin is not None else None
            if digest is None:  # released meanwhile: the dataset is written all the same
                digest = session.scalar(
                    select(NodeDatasetRow.digest).where(
                        NodeDatasetRow.node == finalize.node, NodeDatasetRow.writer_job == job_id
                    )
                )
            self._tasks.finish_in(session, finalize, owner, 0, 0)
            if digest is None:
                return []
            session.execute(
                update(NodeDatasetRow)
                .where(NodeDatasetRow.node == finalize.node, NodeDatasetRow.digest == digest)
                .where(NodeDatasetRow.state == DatasetState.WRITING)
                .values(state=DatasetState.READY, last_used=_now(), fingerprint=fingerprint, scrubbed_at=None)
            )
            return list(
                session.scalars(
                    select(PinRow.job_id).where(PinRow.node == finalize.node, PinRow.digest == digest)
                )
            )

    def complete_if_ready(self, job_id: str) -> bool:
        """transferring -> ready once every node holds its dataset ready; audited once."""
        with self._ledger.sessions.begin() as session:
            return self._complete_locked(session, self._lock(session, job_id))

    @staticmethod
    def _complete_locked(session: Session, job: JobRow) -> bool:
        if job.state != StagingState.TRANSFERRING:
            return False
        nodes = json.loads(job.nodes or "[]")
        ready = session.execute(
            select(PinRow.node, NodeDatasetRow.path)
            .join(
                NodeDatasetRow,
                (NodeDatasetRow.node == PinRow.node) & (NodeDatasetRow.digest == PinRow.digest),
            )
            .where(PinRow.job_id == job.id, NodeDatasetRow.state == DatasetState.READY)
        ).all()
        if len(ready) != len(nodes) or unverified_hits(session, job.id):
            return False
        job.state, job.updated_at = StagingState.READY, _now()
        session.flush()
        AuditTrail.append_in(
            session.connection(),
            job_event(job, AuditAction.STAGE_COMPLETED, details={"paths": dict(sorted(ready))}),
        )
        return True

    def fail(self, job_id: str, error: str) -> None:
        with self._ledger.sessions.begin() as session:
            job = self._lock(session, job_id)
            if job.state in TERMINAL:
                return
            self._fail_locked(session, job, error)

    def _fail_locked(self, session: Session, job: JobRow, error: str) -> None:
        self._let_go(session, job, keep_for_others=False)
        job.state, job.updated_at, job.error = StagingState.FAILED, _now(), redact_text(error)
        session.flush()
        AuditTrail.append_in(
            session.connection(),
            job_event(job, AuditAction.STAGE_FAILED, reasons=(error,), details={"error": redact_text(error)}),
        )
        # Stagings waiting for a dataset this one was writing will not get it from this writer.
        waiting = session.scalars(
            select(PinRow.job_id)
            .join(
                NodeDatasetRow,
                (NodeDatasetRow.node == PinRow.node) & (NodeDatasetRow.digest == PinRow.digest),
            )
            .where(
                NodeDatasetRow.writer_job == job.id,
                NodeDatasetRow.state == DatasetState.EVICTING,
                PinRow.job_id != job.id,
            )
        ).all()
        for other_id in waiting:
            other = self._lock(session, other_id)
            if other.state not in TERMINAL:
                self._fail_locked(
                    session, other, f"the staging writing its dataset ({job.id}) failed: {error}"
                )

    def _let_go(self, session: Session, job: JobRow, *, keep_for_others: bool) -> None:
        """Drop the job's pins and stop its unfinished work. A half-written dataset is evicted,
        unless ``keep_for_others`` (a release, not a failure) and another staging waits for it:
        then its batches go on for that staging."""
        pins = session.scalars(select(PinRow).where(PinRow.job_id == job.id)).all()
        session.execute(delete(PinRow).where(PinRow.job_id == job.id))
        for pin in pins:
            dataset = session.get(NodeDatasetRow, (pin.node, pin.digest), with_for_update=True)
            if dataset is None or dataset.writer_job != job.id or dataset.state != DatasetState.WRITING:
                continue
            waited_for = session.scalar(
                select(PinRow.job_id).where(PinRow.node == pin.node, PinRow.digest == pin.digest).limit(1)
            )
            if keep_for_others and waited_for is not None:
                continue
            dataset.state = DatasetState.EVICTING
            Tasks.cancel_in(session, job.id, pin.node)
        Tasks.cancel_in(session, job.id, "")  # the plan, if it has not run yet

    @staticmethod
    def _lock(session: Session, job_id: str) -> JobRow:
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is None:
            raise NotFoundError(f"no staging {job_id}")
        return job

    def transferring(self) -> list[str]:
        with self._ledger.read_session() as session, session.begin():
            return list(session.scalars(select(JobRow.id).where(JobRow.state == StagingState.TRANSFERRING)))

    # -- the read model ------------------------------------------------------------------

    def view(self, job_id: str) -> Staging:
        with self._ledger.read_session() as session, session.begin():
            job = session.get(JobRow, job_id)
            if job is None or job.mode is None:
                raise NotFoundError(f"no staging {job_id}")
            nodes: list[str] = json.loads(job.nodes or "[]")
            pins = {p.node: p.digest for p in session.scalars(select(PinRow).where(PinRow.job_id == job_id))}
            datasets = {
                d.node: d
                for d in session.scalars(
                    select(NodeDatasetRow).where(
                        NodeDatasetRow.node.in_(nodes), NodeDatasetRow.digest.in_(list(pins.values()) or [""])
                    )
                )
                if pins.get(d.node) == d.digest
            }
            progress_rows = _copy_progress(session, job_id)
            verifying = set(unverified_hits(session, job_id))
            # A node whose dataset another staging is writing shows that staging's progress.
            for node, dataset in datasets.items():
                if dataset.state == DatasetState.WRITING and dataset.writer_job not in (None, job_id):
                    progress_rows += _copy_progress(session, str(dataset.writer_job), node)
            reasons: list[str] = []
            if job.state == StagingState.DENIED:
                denied = session.scalar(
                    select(AuditEventRow.reasons)
                    .where(AuditEventRow.job_id == job_id, AuditEventRow.action == AuditAction.POLICY_DENIED)
                    .limit(1)
                )
                reasons = [str(r) for r in json.loads(denied)] if denied else []
        done: dict[str, list[int]] = {}
        for node, fd, ft, bd, bt in progress_rows:
            acc = done.setdefault(node, [0, 0, 0, 0])
            acc[0] += fd
            acc[1] += ft
            acc[2] += bd
            acc[3] += bt
        statuses = []
        for node in nodes:
            held = datasets.get(node)
            state = _node_state(job.state, held.state if held else None)
            if state == NodeStagingState.READY and node in verifying:
                state = NodeStagingState.TRANSFERRING  # a hit not yet checked on its node
            fd, ft, bd, bt = done.get(node, [0, 0, 0, 0])
            if held is not None:
                ft, bt = held.files, held.bytes
                if held.state == DatasetState.READY:
                    fd, bd = ft, bt
            hit = held is not None and held.writer_job != job_id
            statuses.append(
                NodeStatus(
                    node=node,
                    state=state,
                    path=held.path if held is not None else None,
                    files_done=fd,
                    files_total=ft,
                    bytes_done=bd,
                    bytes_total=bt,
                    cache_hit=hit,
                )
            )
        return Staging(
            id=job.id,
            state=job.state,
            source=job.source,
            mode=job.mode,
            job=job.job_ref,
            user=job.actor,
            role=job.role,
            project=job.project,
            created_at=job.created_at,
            updated_at=job.updated_at,
            digest=job.manifest_digest,
            progress=_progress(statuses, job.started_at, job.state),
            nodes=statuses,
            errors=[job.error] if job.error and job.state != StagingState.DENIED else [],
            reasons=reasons,
        )


class RetryLaterError(Exception):
    """A transient conflict: run the step again a little later."""


def _copy_progress(
    session: Session, job_id: str, node: str | None = None
) -> list[tuple[str, int, int, int, int]]:
    """Per node: (node, files_done, files, bytes_done, bytes) summed over a job's copy batches."""
    statement = (
        select(
            TaskRow.node,
            func.sum(TaskRow.files_done),
            func.sum(TaskRow.files),
            func.sum(TaskRow.bytes_done),
            func.sum(TaskRow.bytes),
        )
        .where(TaskRow.job_id == job_id, TaskRow.kind == "copy")
        .group_by(TaskRow.node)
    )
    if node is not None:
        statement = statement.where(TaskRow.node == node)
    return [
        (n, int(fd or 0), int(ft or 0), int(bd or 0), int(bt or 0))
        for n, fd, ft, bd, bt in session.execute(statement)
    ]


def share(portion: NodePortion) -> BatchRange | None:
    """The key range and totals of a node's whole share, or None for an empty one."""
    if not portion.batches:
        return None
    first, last = portion.batches[0], portion.batches[-1]
    return BatchRange(first.key_from, last.key_to, portion.files, portion.bytes)


def unverified_hits(session: Session, job_id: str) -> list[str]:
    """The nodes where the job's cache hit is not yet checked."""
    return list(
        session.scalars(
            select(TaskRow.node).where(
                TaskRow.job_id == job_id, TaskRow.kind == "verify", TaskRow.state != TaskState.DONE
            )
        )
    )


def _node_state(job_state: str, dataset_state: str | None) -> str:
    if job_state in (StagingState.FAILED, StagingState.RELEASED, StagingState.DENIED):
        return NodeStagingState.FAILED if job_state == StagingState.DENIED else job_state
    if dataset_state == DatasetState.READY:
        return NodeStagingState.READY
    if dataset_state == DatasetState.WRITING:
        return NodeStagingState.TRANSFERRING
    return NodeStagingState.PENDING


def _progress(nodes: Sequence[NodeStatus], started_at: datetime | None, state: str) -> StagingProgress:
    fd = sum(n.files_done for n in nodes)
    ft = sum(n.files_total for n in nodes)
    bd = sum(n.bytes_done for n in nodes)
    bt = sum(n.bytes_total for n in nodes)
    rate = eta = None
    if started_at is not None and state == StagingState.TRANSFERRING:
        elapsed = (_now() - started_at) / timedelta(seconds=1)
        if elapsed > 0 and bd > 0:
            rate = bd / elapsed
            eta = max(0.0, (bt - bd) / rate)
    return StagingProgress(fd, ft, bd, bt, rate, eta)
