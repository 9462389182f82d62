"""The read model of service stagings: what a staging looks like to the API and its requester.

A list of stagings is read in a fixed number of statements (jobs, pins, their datasets, copy
progress, unchecked hits, denial reasons), however many it holds; one staging's view is the
same code over a list of one, so the two can never disagree.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.errors import NotFoundError
from stagegate.ledger.database import Ledger
from stagegate.ledger.models import AuditEventRow, JobRow, NodeDatasetRow, PinRow, TaskRow
from stagegate.ledger.tokens import Principal
from stagegate.states import DatasetState, NodeStagingState, StagingState, TaskState

SEES_ALL = ("auditor", "admin")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node: str
    state: str  # a NodeStagingState
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
    # While planning: the objects (and bytes) the plan step has listed so far; else None.
    listed_objects: int | None = None
    listed_bytes: int | None = None


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
class _Counts:
    """Copy progress of one job on one node, summed over its batches."""

    files_done: int = 0
    files: int = 0
    bytes_done: int = 0
    bytes: int = 0

    def __add__(self, other: "_Counts") -> "_Counts":
        return _Counts(
            self.files_done + other.files_done,
            self.files + other.files,
            self.bytes_done + other.bytes_done,
            self.bytes + other.bytes,
        )


def _now() -> datetime:
    return datetime.now(UTC)


class StagingViews:
    """Stagings as their requesters, auditors and admins see them."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def view(self, job_id: str) -> Staging:
        with self._ledger.read_session() as session, session.begin():
            job = session.get(JobRow, job_id)
            if job is None or job.mode is None:
                raise NotFoundError(f"no staging {job_id}")
            (staging,) = views_in(session, [job])
        return staging

    def views(self, job_ids: Sequence[str]) -> list[Staging]:
        """The views of the service stagings among ``job_ids``, in one read (five statements
        at most): what many requests waiting at once read together."""
        with self._ledger.read_session() as session, session.begin():
            jobs = session.scalars(
                select(JobRow).where(JobRow.id.in_(list(job_ids)), JobRow.mode.is_not(None))
            )
            return views_in(session, list(jobs))

    def visible(self, who: Principal, job_id: str) -> Staging:
        """The staging, if ``who`` may see it; others' stagings are NotFound, not Forbidden, so
        their existence does not leak."""
        staging = self.view(job_id)
        if who.role not in SEES_ALL and staging.user != who.user:
            raise NotFoundError(f"no staging {job_id}")
        return staging

    def for_principal(self, who: Principal, state: str | None = None, limit: int = 100) -> list[Staging]:
        """The newest ``limit`` stagings ``who`` may see (in ``state``), newest first."""
        with self._ledger.read_session() as session, session.begin():
            statement = select(JobRow).where(JobRow.kind == "stage", JobRow.mode.is_not(None))
            if who.role not in SEES_ALL:
                statement = statement.where(JobRow.actor == who.user)
            if state is not None:
                statement = statement.where(JobRow.state == state)
            jobs = list(session.scalars(statement.order_by(JobRow.created_at.desc()).limit(limit)))
            return views_in(session, jobs)


def views_in(session: Session, jobs: Sequence[JobRow]) -> list[Staging]:
    """The views of ``jobs`` (service stagings), in their order, in five statements at most."""
    if not jobs:
        return []
    ids = [job.id for job in jobs]
    pins: dict[str, dict[str, str]] = defaultdict(dict)  # job -> node -> digest
    for pin in session.scalars(select(PinRow).where(PinRow.job_id.in_(ids))):
        pins[pin.job_id][pin.node] = pin.digest
    digests = {digest for held in pins.values() for digest in held.values()}
    datasets = (
        {
            (d.node, d.digest): d
            for d in session.scalars(select(NodeDatasetRow).where(NodeDatasetRow.digest.in_(digests)))
        }
        if digests
        else {}
    )
    # A node whose dataset another staging is writing shows that staging's progress.
    writers = {
        str(d.writer_job) for d in datasets.values() if d.state == DatasetState.WRITING and d.writer_job
    }
    progress = _copy_progress(session, set(ids) | writers)
    unchecked = select(TaskRow.job_id, TaskRow.node).where(
        TaskRow.job_id.in_(ids), TaskRow.kind == "verify", TaskRow.state != TaskState.DONE
    )
    verifying = {(job_id, node) for job_id, node in session.execute(unchecked)}
    reasons = _denial_reasons(session, [job.id for job in jobs if job.state == StagingState.DENIED])
    views = []
    for job in jobs:
        held = {
            node: datasets[(node, digest)]
            for node, digest in pins.get(job.id, {}).items()
            if (node, digest) in datasets
        }
        statuses = [_node_status(job, node, held.get(node), progress, verifying) for node in _nodes_of(job)]
        views.append(_staging(job, statuses, reasons.get(job.id, [])))
    return views


def _nodes_of(job: JobRow) -> list[str]:
    nodes: list[str] = json.loads(job.nodes or "[]")
    return nodes


def _copy_progress(session: Session, job_ids: Iterable[str]) -> dict[tuple[str, str], _Counts]:
    """(job, node) -> the job's copy batches on that node, summed."""
    statement = (
        select(
            TaskRow.job_id,
            TaskRow.node,
            func.sum(TaskRow.files_done),
            func.sum(TaskRow.files),
            func.sum(TaskRow.bytes_done),
            func.sum(TaskRow.bytes),
        )
        .where(TaskRow.job_id.in_(list(job_ids)), TaskRow.kind == "copy")
        .group_by(TaskRow.job_id, TaskRow.node)
    )
    return {
        (job, node): _Counts(int(fd or 0), int(ft or 0), int(bd or 0), int(bt or 0))
        for job, node, fd, ft, bd, bt in session.execute(statement)
    }


def _denial_reasons(session: Session, denied: Sequence[str]) -> dict[str, list[str]]:
    """job -> the reasons of its ``policy.denied`` event (there is one per denied staging)."""
    if not denied:
        return {}
    rows = session.execute(
        select(AuditEventRow.job_id, AuditEventRow.reasons).where(
            AuditEventRow.job_id.in_(denied), AuditEventRow.action == AuditAction.POLICY_DENIED
        )
    )
    reasons: dict[str, list[str]] = {}
    for job_id, text in rows:
        if job_id is not None and job_id not in reasons:
            reasons[job_id] = [str(r) for r in json.loads(text)] if text else []
    return reasons


def _node_status(
    job: JobRow,
    node: str,
    held: NodeDatasetRow | None,
    progress: dict[tuple[str, str], _Counts],
    verifying: set[tuple[str, str]],
) -> NodeStatus:
    state = node_state(job.state, held.state if held else None)
    if state == NodeStagingState.READY and (job.id, node) in verifying:
        state = NodeStagingState.TRANSFERRING  # a hit not yet checked on its node
    counts = progress.get((job.id, node), _Counts())
    if held is not None and held.state == DatasetState.WRITING and held.writer_job not in (None, job.id):
        counts += progress.get((str(held.writer_job), node), _Counts())
    fd, ft, bd, bt = counts.files_done, counts.files, counts.bytes_done, counts.bytes
    if held is not None:
        ft, bt = held.files, held.bytes
        if held.state == DatasetState.READY:
            fd, bd = ft, bt
    return NodeStatus(
        node=node,
        state=state,
        path=held.path if held is not None else None,
        files_done=fd,
        files_total=ft,
        bytes_done=bd,
        bytes_total=bt,
        cache_hit=held is not None and held.writer_job != job.id,
    )


def _staging(job: JobRow, statuses: list[NodeStatus], reasons: list[str]) -> Staging:
    assert job.mode is not None
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
        progress=_with_listing(progress_of(statuses, job.started_at, job.state), job),
        nodes=statuses,
        errors=[job.error] if job.error and job.state != StagingState.DENIED else [],
        reasons=reasons,
    )


def _with_listing(progress: StagingProgress, job: JobRow) -> StagingProgress:
    if job.state != StagingState.PLANNING:
        return progress
    return replace(progress, listed_objects=job.files or 0, listed_bytes=job.bytes or 0)


def node_state(job_state: str, dataset_state: str | None) -> str:
    """One node's part of a staging, from the staging's state and its dataset's there."""
    if job_state in (StagingState.FAILED, StagingState.RELEASED, StagingState.DENIED):
        return NodeStagingState.FAILED if job_state == StagingState.DENIED else job_state
    if dataset_state == DatasetState.READY:
        return NodeStagingState.READY
    if dataset_state == DatasetState.WRITING:
        return NodeStagingState.TRANSFERRING
    return NodeStagingState.PENDING


def progress_of(nodes: Sequence[NodeStatus], started_at: datetime | None, state: str) -> StagingProgress:
    """The whole staging's progress, with a rate and ETA while it transfers."""
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
