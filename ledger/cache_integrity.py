"""Keeping a node's cache honest: a hit counts only once its node checked the copy, and a copy
found altered is quarantined (never a hit again, audited, deleted once nobody holds it) while
the staging that met it copies afresh.

The checks themselves (fingerprints, hashes) run on the node; this module keeps what they
decide, each decision and its audit event in one transaction.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import NewEvent, job_event
from stagegate.ledger.models import JobRow, NodeDatasetRow, NodeRow, PinRow, QuarantinedDatasetRow, TaskRow
from stagegate.ledger.nodes import dataset_path, held_in
from stagegate.ledger.staging_steps import StagingSteps
from stagegate.ledger.tasks import BatchRange, TaskKey, Tasks, new_task
from stagegate.states import DatasetState, StagingState, TaskState

QUARANTINED = AuditAction.DATASET_QUARANTINED


def _now() -> datetime:
    return datetime.now(UTC)


def _job_of(key: TaskKey) -> str:
    return key.job_id


@dataclass(frozen=True, slots=True)
class HitToVerify:
    """A staging's cache hit on one node, as the node's worker must check it."""

    digest: str
    path: str | None  # None: no copy on the node any more (quarantined by the scrub)
    state: str | None
    fingerprint: str | None
    written_by_other: bool  # another staging is writing it afresh: wait for that one
    share: BatchRange | None  # the node's share of the plan, to copy afresh from


@dataclass(frozen=True, slots=True)
class ToScrub:
    digest: str
    path: str
    fingerprint: str | None
    writer_job: str | None
    files: int


@dataclass(frozen=True, slots=True)
class KeyRange:
    """The first and last key (inclusive) of a manifest slice."""

    first: str
    last: str


@dataclass(frozen=True, slots=True)
class QuarantinedCopy:
    """A cached copy found altered and moved aside to ``path``; ``holders`` are the stagings
    that held it when it was found (it is deleted once none of them does)."""

    id: str
    node: str
    digest: str
    path: str
    bytes: int
    reason: str
    holders: tuple[str, ...]
    quarantined_at: datetime


def _quarantined_copy(row: QuarantinedDatasetRow) -> QuarantinedCopy:
    return QuarantinedCopy(
        id=row.id,
        node=row.node,
        digest=row.digest,
        path=row.path,
        bytes=row.bytes,
        reason=row.reason,
        holders=tuple(json.loads(row.holders)),
        quarantined_at=row.quarantined_at,
    )


class CacheIntegrity:
    """Hit verification, quarantine and scrub bookkeeping of one ledger's node caches."""

    def __init__(self, ledger: Ledger, lease_seconds: float = 120.0) -> None:
        self._ledger = ledger
        self._stagings = StagingSteps(ledger, lease_seconds)

    # -- cache hits ------------------------------------------------------------------------

    def hit(self, key: TaskKey) -> HitToVerify | None:
        """What the verify task ``key`` must check; None if the staging pins nothing there."""
        with self._ledger.read_session() as session, session.begin():
            pin = session.scalar(select(PinRow).where(PinRow.job_id == key.job_id, PinRow.node == key.node))
            task = session.scalar(
                select(TaskRow).where(
                    TaskRow.job_id == key.job_id, TaskRow.kind == "verify", TaskRow.node == key.node
                )
            )
            if pin is None or task is None:
                return None
            row = session.get(NodeDatasetRow, (key.node, pin.digest))
            share = (
                BatchRange(task.key_from, task.key_to, task.files, task.bytes)
                if task.key_from is not None and task.key_to is not None
                else None
            )
            return HitToVerify(
                digest=pin.digest,
                path=row.path if row is not None else None,
                state=row.state if row is not None else None,
                fingerprint=row.fingerprint if row is not None else None,
                written_by_other=row is not None
                and row.state == DatasetState.WRITING
                and row.writer_job not in (None, key.job_id),
                share=share,
            )

    def confirm_hit(self, key: TaskKey, owner: str, digest: str, fingerprint: str) -> bool:
        """The node found the copy matching ``fingerprint``: the hit counts, and the staging may
        now be complete. False if the copy changed in the ledger meanwhile (check again)."""
        with self._ledger.sessions.begin() as session:
            job = session.get(JobRow, key.job_id, with_for_update=True)
            # Read, not written: shared with the submissions pinning it (ledger.staging_steps.lock_cached).
            row = session.get(NodeDatasetRow, (key.node, digest), with_for_update={"read": True})
            if row is None or row.state != DatasetState.READY or row.fingerprint != fingerprint:
                return False
            Tasks.finish_in(session, key, owner, row.files, row.bytes)
            if job is not None:
                session.flush()
                StagingSteps.complete_in(session, job)
            return True

    def confirm_hits(
        self, keys: Sequence[TaskKey], owner: str, digest: str, fingerprint: str
    ) -> list[TaskKey]:
        """As :meth:`confirm_hit`, for the checks ``keys`` (of one node, claimed by ``owner``) of
        the same copy, in one transaction: a burst of hits costs one commit, not one each.
        Each staging still completes, audited, on its own. Returns the keys not confirmed
        (the copy changed in the ledger meanwhile: check again); all of them, then."""
        if not keys:
            return []
        node = keys[0].node
        with self._ledger.sessions.begin() as session:
            # The stagings first, then the copy: the order confirm_hit and a release lock them in.
            jobs = [session.get(JobRow, k.job_id, with_for_update=True) for k in sorted(keys, key=_job_of)]
            row = session.get(NodeDatasetRow, (node, digest), with_for_update={"read": True})
            if row is None or row.state != DatasetState.READY or row.fingerprint != fingerprint:
                return list(keys)
            for key in keys:
                Tasks.finish_in(session, key, owner, row.files, row.bytes)
            session.flush()
            with AuditTrail.appending_last(session.connection()):  # as StagingSteps.follow_all
                for job in jobs:
                    if job is not None:
                        StagingSteps.complete_in(session, job)
        return []

    def other_hits(self, key: TaskKey, digest: str) -> list[TaskKey]:
        """The other stagings' verify tasks, not yet run, for the same dataset on the same node:
        admitted before this check began, so one fingerprint taken now answers for them all."""
        with self._ledger.read_session() as session, session.begin():
            jobs = session.scalars(
                select(TaskRow.job_id)
                .join(PinRow, (PinRow.job_id == TaskRow.job_id) & (PinRow.node == TaskRow.node))
                .where(
                    TaskRow.kind == "verify",
                    TaskRow.node == key.node,
                    TaskRow.state.in_((TaskState.WAITING, TaskState.QUEUED)),
                    TaskRow.job_id != key.job_id,
                    PinRow.digest == digest,
                )
            ).all()
            return [TaskKey(job_id, "verify", key.node, 0) for job_id in jobs]

    def wait_for_writer(self, key: TaskKey, owner: str) -> None:
        """Another staging is writing the dataset afresh: this one completes when it is ready."""
        Tasks(self._ledger, 0).finish(key, owner)

    def recopy(
        self,
        key: TaskKey,
        owner: str,
        digest: str,
        batches: Sequence[BatchRange],
        *,
        mismatch: str | None,
        moved_to: str | None,
    ) -> None:
        """The hit failed its check (``mismatch``; the altered copy now lies at ``moved_to``), or
        the copy is gone: quarantine what was there and have this staging copy the share afresh."""
        try:
            with self._ledger.sessions.begin() as session:
                job = session.get(JobRow, key.job_id, with_for_update=True)
                if job is None or job.state != StagingState.TRANSFERRING:
                    Tasks.finish_in(session, key, owner, 0, 0)
                    return
                row = session.get(NodeDatasetRow, (key.node, digest), with_for_update=True)
                if row is not None and row.state not in (DatasetState.READY, DatasetState.EVICTING):
                    # Being written (or deleted) by someone else since the check: wait for it.
                    Tasks.finish_in(session, key, owner, 0, 0)
                    return
                if row is not None and mismatch is not None:
                    _quarantine_in(session, row, moved_to or "", mismatch, "verify", job)
                if row is None:
                    root = session.scalar(select(NodeRow.root).where(NodeRow.name == key.node)) or ""
                    totals = (sum(b.files for b in batches), sum(b.bytes for b in batches))
                    row = NodeDatasetRow(
                        node=key.node,
                        digest=digest,
                        path=dataset_path(root, digest),
                        files=totals[0],
                        bytes=totals[1],
                        state=DatasetState.WRITING,
                        created_at=_now(),
                        last_used=_now(),
                    )
                    session.add(row)
                row.state, row.writer_job, row.fingerprint, row.scrubbed_at = (
                    DatasetState.WRITING,
                    job.id,
                    None,
                    None,
                )
                row.created_at = row.last_used = _now()
                session.flush()
                _make_room(session, key.node)
                for idx, batch in enumerate(batches):
                    session.add(new_task(TaskKey(job.id, "copy", key.node, idx), TaskState.WAITING, batch))
                session.add(new_task(TaskKey(job.id, "finalize", key.node, 0), TaskState.WAITING))
                Tasks.finish_in(session, key, owner, 0, 0)
        except NoRoomError as exc:
            self._stagings.fail(key.job_id, f"the cached copy on node {key.node} failed its check: {exc}")

    # -- the scrub -------------------------------------------------------------------------

    def next_to_scrub(self, node: str, older_than: timedelta) -> ToScrub | None:
        """The ready dataset on ``node`` scrubbed longest ago (never first), if due."""
        due = _now() - older_than
        with self._ledger.read_session() as session, session.begin():
            row = session.scalar(
                select(NodeDatasetRow)
                .where(NodeDatasetRow.node == node, NodeDatasetRow.state == DatasetState.READY)
                .where(NodeDatasetRow.scrubbed_at.is_(None) | (NodeDatasetRow.scrubbed_at < due))
                .order_by(NodeDatasetRow.scrubbed_at.is_not(None), NodeDatasetRow.scrubbed_at)
                .limit(1)
            )
            if row is None:
                return None
            return ToScrub(row.digest, row.path, row.fingerprint, row.writer_job, row.files)

    def share_of(self, node: str, job_id: str) -> KeyRange | None:
        """The key range the writer ``job_id`` copied onto ``node``."""
        with self._ledger.read_session() as session, session.begin():
            first, last = session.execute(
                select(func.min(TaskRow.key_from), func.max(TaskRow.key_to)).where(
                    TaskRow.job_id == job_id, TaskRow.kind == "copy", TaskRow.node == node
                )
            ).one()
            return KeyRange(first, last) if first is not None and last is not None else None

    def scrubbed(self, node: str, digest: str) -> None:
        with self._ledger.sessions.begin() as session:
            row = session.get(NodeDatasetRow, (node, digest), with_for_update=True)
            if row is not None and row.state == DatasetState.READY:
                row.scrubbed_at = _now()

    def quarantine(
        self, node: str, digest: str, fingerprint: str | None, moved_to: str, mismatch: str
    ) -> bool:
        """The scrub found the ready dataset altered and moved it to ``moved_to``: no hit finds
        it again. False if the ledger's dataset is no longer the one scrubbed."""
        with self._ledger.sessions.begin() as session:
            row = session.get(NodeDatasetRow, (node, digest), with_for_update=True)
            if row is None or row.state != DatasetState.READY or row.fingerprint != fingerprint:
                return False
            _quarantine_in(session, row, moved_to, mismatch, "scrub", None)
            session.delete(row)
            return True

    # -- deleting quarantined copies -------------------------------------------------------

    def releasable(self, node: str) -> list[QuarantinedCopy]:
        """The node's quarantined copies that no staging holds any more."""
        with self._ledger.read_session() as session, session.begin():
            out = []
            for row in session.scalars(
                select(QuarantinedDatasetRow).where(QuarantinedDatasetRow.node == node)
            ):
                holders = json.loads(row.holders)
                held = holders and session.scalar(
                    select(func.count())
                    .select_from(PinRow)
                    .where(PinRow.job_id.in_(holders), PinRow.node == node, PinRow.digest == row.digest)
                )
                if not held:
                    out.append(_quarantined_copy(row))
            return out

    def deleted(self, quarantine_id: str) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(delete(QuarantinedDatasetRow).where(QuarantinedDatasetRow.id == quarantine_id))

    def quarantined(self, node: str | None = None) -> list[QuarantinedCopy]:
        with self._ledger.read_session() as session, session.begin():
            statement = select(QuarantinedDatasetRow)
            if node is not None:
                statement = statement.where(QuarantinedDatasetRow.node == node)
            return [_quarantined_copy(row) for row in session.scalars(statement)]


def _quarantine_in(
    session: Session,
    row: NodeDatasetRow,
    moved_to: str,
    mismatch: str,
    found_by: str,
    job: JobRow | None,
) -> None:
    """Record the altered copy of ``row`` (now at ``moved_to``) and audit it. Its holders are
    the stagings that pinned it, the one that met it aside: they may still be reading it."""
    holders = list(
        session.scalars(select(PinRow.job_id).where(PinRow.node == row.node, PinRow.digest == row.digest))
    )
    if job is not None:
        holders = [h for h in holders if h != job.id]
    session.add(
        QuarantinedDatasetRow(
            id=str(uuid.uuid4()),
            node=row.node,
            digest=row.digest,
            path=moved_to,
            bytes=row.bytes,
            reason=mismatch,
            holders=json.dumps(sorted(holders)),
            quarantined_at=_now(),
        )
    )
    details: dict[str, object] = {
        "node": row.node,
        "digest": row.digest,
        "mismatch": mismatch,
        "found_by": found_by,
        "holders": len(holders),
    }
    if job is not None:
        event = job_event(job, QUARANTINED, reasons=(mismatch,), details=details)
    else:
        event = NewEvent(
            actor=f"node:{row.node}",
            role="worker",
            action=QUARANTINED,
            destination=row.path,
            files=row.files,
            bytes=row.bytes,
            manifest_digest=row.digest,
            reasons=(mismatch,),
            details=details,
        )
    session.flush()
    AuditTrail.append_in(session.connection(), event)


def _make_room(session: Session, node: str) -> None:
    """Evict what must go so the node's datasets and quarantined copies fit its capacity."""
    capacity = session.scalar(select(NodeRow.capacity).where(NodeRow.name == node)) or 0
    held = held_in(session, node)
    quarantined = session.scalar(
        select(func.coalesce(func.sum(QuarantinedDatasetRow.bytes), 0)).where(
            QuarantinedDatasetRow.node == node
        )
    )
    evict = choose_evictions(node, capacity - int(quarantined or 0), held, 0)
    if evict:
        session.execute(
            NodeDatasetRow.__table__.update()  # type: ignore[attr-defined]
            .where(NodeDatasetRow.node == node, NodeDatasetRow.digest.in_(evict))
            .values(state=DatasetState.EVICTING)
        )
