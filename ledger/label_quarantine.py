"""Cached datasets whose source labels rose: found by the background re-scan
(``workers.label_rescan``), quarantined here.

Labels change without changing an object's ETag or LastModified (an S3 tag, a rewritten
``.classification`` the plan digest already named), so a cache hit cannot see them. The
re-scan re-reads them now and then; a dataset whose labels the staging zone no longer accepts
is quarantined in one transaction with its audit event: no new pin (admission denies with the
reason instead of a hit), no request follows its plan again (the next one lists afresh), and
once no staging holds it, it is marked for eviction and the node deletes it as it deletes any
eviction.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.errors import StagegateError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import NewEvent
from stagegate.ledger.models import DatasetLabelCheckRow, JobRow, NodeDatasetRow, PinRow
from stagegate.ledger.plan_shares import PlanShares
from stagegate.ledger.transaction_local import kept_or_new
from stagegate.states import DatasetState


class QuarantinedError(StagegateError):
    """The cached dataset's labels rose above what the zone accepts: it is never pinned again."""


@dataclass(frozen=True, slots=True)
class DueDataset:
    """A ready cached dataset whose labels are due for a re-read, and whose plan says what to read."""

    node: str
    digest: str
    writer_job: str
    plan_job: str
    source: str
    actor: str
    project: str | None


def _now() -> datetime:
    return datetime.now(UTC)


_FOUND_CLEAR = "stagegate.quarantine.clear"


def check_not_quarantined(session: Session, node: str, digest: str) -> None:
    """Raise :class:`QuarantinedError` if ``node``'s dataset ``digest`` is quarantined.

    Callers hold that dataset's row locked (``staging_steps.lock_cached``), and a quarantine
    locks it exclusively before it writes (:meth:`DatasetLabels.quarantine`): within the
    caller's transaction the answer cannot change, so one found clear is not read again (a
    submission following a plan checks each node before it admits, and admission checks too).
    """
    clear: set[tuple[str, str]] = kept_or_new(session.connection(), _FOUND_CLEAR, set)
    if (node, digest) in clear:
        return
    row = session.get(DatasetLabelCheckRow, (node, digest))
    if row is not None and row.quarantined_at is not None:
        raise QuarantinedError(
            f"the copy of this dataset cached on node {node} is quarantined: {row.reason}; "
            "its source's labels are above what the staging zone accepts"
        )
    clear.add((node, digest))


class DatasetLabels:
    """When each cached dataset's labels were last read, and which are quarantined."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def next_due(self, node: str, older_than: timedelta) -> DueDataset | None:
        """The ready dataset on ``node`` whose labels were read longest ago, if that was before
        ``older_than`` ago. A dataset never re-read counts as read when it was written: its
        labels were read just before, at planning, and re-reading every new dataset at once
        would cost a request per object for nothing."""
        due = _now() - older_than
        checked = func.coalesce(DatasetLabelCheckRow.checked_at, NodeDatasetRow.created_at)
        with self._ledger.read_session() as session, session.begin():
            row = session.execute(
                select(NodeDatasetRow.digest, JobRow)
                .join(JobRow, JobRow.id == NodeDatasetRow.writer_job)
                .outerjoin(
                    DatasetLabelCheckRow,
                    (DatasetLabelCheckRow.node == NodeDatasetRow.node)
                    & (DatasetLabelCheckRow.digest == NodeDatasetRow.digest),
                )
                .where(NodeDatasetRow.node == node, NodeDatasetRow.state == DatasetState.READY)
                .where(DatasetLabelCheckRow.quarantined_at.is_(None))
                .where(checked < due)
                .order_by(checked)
                .limit(1)
            ).first()
            if row is None:
                return None
            digest, job = row
            return DueDataset(
                node, digest, job.id, job.plan_job or job.id, job.source, job.actor, job.project
            )

    def checked(self, node: str, digest: str) -> None:
        with self._ledger.sessions.begin() as session:
            row = session.get(DatasetLabelCheckRow, (node, digest), with_for_update=True)
            if row is None:
                session.add(DatasetLabelCheckRow(node=node, digest=digest, checked_at=_now()))
            else:
                row.checked_at = _now()

    def quarantine(self, due: DueDataset, reasons: list[str], details: dict[str, object]) -> bool:
        """Quarantine ``due`` (its labels rose), audited once; False if it already was, or is
        no longer the ready dataset the re-scan read."""
        now = _now()
        with self._ledger.sessions.begin() as session:
            dataset = session.get(NodeDatasetRow, (due.node, due.digest), with_for_update=True)
            if dataset is None or dataset.state != DatasetState.READY or dataset.writer_job != due.writer_job:
                return False
            row = session.get(DatasetLabelCheckRow, (due.node, due.digest), with_for_update=True)
            if row is not None and row.quarantined_at is not None:
                return False
            reason = "; ".join(reasons)
            if row is None:
                session.add(
                    DatasetLabelCheckRow(
                        node=due.node, digest=due.digest, checked_at=now, quarantined_at=now, reason=reason
                    )
                )
            else:
                row.checked_at, row.quarantined_at, row.reason = now, now, reason
            followers = session.scalars(select(JobRow.id).where(JobRow.plan_job == due.plan_job)).all()
            PlanShares.forget_plans_of(session, [due.plan_job, *followers])
            holders = session.scalar(
                select(PinRow.job_id).where(PinRow.node == due.node, PinRow.digest == due.digest).limit(1)
            )
            if holders is None:
                dataset.state = DatasetState.EVICTING
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                NewEvent(
                    actor=f"node:{due.node}",
                    role="worker",
                    action=AuditAction.DATASET_LABELS_ROSE,
                    source=due.source,
                    destination=dataset.path,
                    job_id=due.writer_job,
                    files=dataset.files,
                    bytes=dataset.bytes,
                    manifest_digest=due.digest,
                    reasons=tuple(reasons),
                    details={
                        **details,
                        "node": due.node,
                        "digest": due.digest,
                        "plan_job": due.plan_job,
                        "evicting": holders is None,
                    },
                ),
            )
            return True

    def evict_released(self, node: str) -> list[str]:
        """Mark for eviction the node's quarantined datasets no staging holds any more, and
        forget the checks of datasets gone from the node. Returns the digests marked."""
        marked: list[str] = []
        with self._ledger.sessions.begin() as session:
            rows = session.execute(
                select(DatasetLabelCheckRow, NodeDatasetRow)
                .outerjoin(
                    NodeDatasetRow,
                    (NodeDatasetRow.node == DatasetLabelCheckRow.node)
                    & (NodeDatasetRow.digest == DatasetLabelCheckRow.digest),
                )
                .where(DatasetLabelCheckRow.node == node)
                .with_for_update(of=DatasetLabelCheckRow)
            ).all()
            for check, joined in rows:
                dataset: NodeDatasetRow | None = joined  # None: the outer join found it gone
                if dataset is None:
                    # Deleted (evicted) since: a new copy of this digest is read and checked anew.
                    session.execute(
                        delete(DatasetLabelCheckRow).where(
                            DatasetLabelCheckRow.node == node, DatasetLabelCheckRow.digest == check.digest
                        )
                    )
                    continue
                if check.quarantined_at is None or dataset.state != DatasetState.READY:
                    continue
                pinned = session.scalar(
                    select(PinRow.job_id).where(PinRow.node == node, PinRow.digest == check.digest).limit(1)
                )
                if pinned is None:
                    dataset.state = DatasetState.EVICTING
                    marked.append(check.digest)
        return marked
