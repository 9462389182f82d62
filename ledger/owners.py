"""Pins that end with their pod: the Kubernetes owner a service staging may name.

A staging submitted with an owner (``stagegate stage --owner-pod/--owner-job``, the API's
``owner``) is released by the service once that Pod or Job is gone, as ``stagegate release``
would: ``stage.released`` with ``by: stagegate``, the reason and the owner. Whether it is gone is
the worker's question to the Kubernetes API (``workers.owner_checks``); this module keeps the
rows: which owners are due for a check (claimed by a conditional update, so many reconcilers
ask once per interval), what the last check said, and the release itself, under the job's row
lock as every staging change.

An owner only ever ends the staging that named it, and only its submitter names it: naming
someone else's pod binds one's own pins to that pod's life, and touches nothing of theirs.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import JobRow, NodeDatasetRow, PinOwnerRow, PinRow
from stagegate.ledger.pins import ENDED, SERVICE_ACTOR
from stagegate.ledger.staging_requests import release_locked
from stagegate.owners import OwnerRef
from stagegate.states import DatasetState, StagingState

MAX_ERROR = 500


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OwnedDataset:
    """A held staging's dataset on a node, and the uid of the owner that may see it."""

    owner_uid: str
    job_id: str
    path: str


class PinOwners:
    """The pin owners of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def of(self, job_ids: Iterable[str]) -> dict[str, OwnerRef]:
        """The owners of these stagings (those submitted without one have none)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(select(PinOwnerRow).where(PinOwnerRow.job_id.in_(ids)))
            return {row.job_id: row.owner() for row in rows}

    def views_on(self, node: str) -> list[OwnedDataset]:
        """(owner uid, staging id, dataset path) of every ready staging that names an owner and
        pins a ready dataset on ``node``: the views that node should show (``workers.views``)."""
        with self._ledger.read_session() as session, session.begin():
            rows = session.execute(
                select(PinOwnerRow.uid, PinRow.job_id, NodeDatasetRow.path)
                .join(PinOwnerRow, PinOwnerRow.job_id == PinRow.job_id)
                .join(JobRow, JobRow.id == PinRow.job_id)
                .join(
                    NodeDatasetRow,
                    (NodeDatasetRow.node == PinRow.node) & (NodeDatasetRow.digest == PinRow.digest),
                )
                .where(
                    PinRow.node == node,
                    JobRow.state == StagingState.READY,
                    NodeDatasetRow.state == DatasetState.READY,
                )
                .order_by(PinRow.job_id)
            )
            return [OwnedDataset(uid, job_id, path) for uid, job_id, path in rows]

    def claim_due(
        self, interval: float, now: datetime | None = None, limit: int = 200
    ) -> list[tuple[str, OwnerRef]]:
        """The owners of held stagings due for a check, each claimed until ``now + interval``:
        another reconciler running the same pass gets none of them."""
        now = now or _now()
        with self._ledger.read_session() as session, session.begin():
            due = list(
                session.scalars(
                    select(PinOwnerRow)
                    .join(JobRow, JobRow.id == PinOwnerRow.job_id)
                    .where(PinOwnerRow.next_check_at <= now, JobRow.state.not_in(ENDED))
                    .order_by(PinOwnerRow.next_check_at)
                    .limit(limit)
                )
            )
            owners = [(row.job_id, row.owner()) for row in due]
        claimed = []
        later = now + timedelta(seconds=interval)
        with self._ledger.sessions.begin() as session:
            for job_id, owner in owners:
                won = session.execute(
                    update(PinOwnerRow)
                    .where(PinOwnerRow.job_id == job_id, PinOwnerRow.next_check_at <= now)
                    .values(next_check_at=later)
                )
                if won.rowcount == 1:  # type: ignore[attr-defined]  # a CursorResult
                    claimed.append((job_id, owner))
        return claimed

    def present(self, job_id: str, now: datetime | None = None) -> None:
        """The owner is still there: keep the pins, and say when it was last seen."""
        self._record(job_id, checked_at=now or _now(), failures=0, last_error=None)

    def unknown(self, job_id: str, error: str) -> None:
        """The check could not tell (the API down or refusing): keep the pins, count the failure."""
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(PinOwnerRow)
                .where(PinOwnerRow.job_id == job_id)
                .values(failures=PinOwnerRow.failures + 1, last_error=error[:MAX_ERROR])
            )

    def _record(self, job_id: str, **values: object) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(update(PinOwnerRow).where(PinOwnerRow.job_id == job_id).values(**values))

    def release_gone(self, job_id: str, owner: OwnerRef, reason: str, now: datetime | None = None) -> bool:
        """Release the staging whose ``owner`` is gone (``reason`` says how it was told). False if
        it holds nothing any more, or if ``owner`` is not the one it names."""
        with self._ledger.sessions.begin() as session:
            job = session.get(JobRow, job_id, with_for_update=True)
            row = session.get(PinOwnerRow, job_id, with_for_update=True)
            if job is None or row is None or row.owner() != owner:
                return False
            row.checked_at = now or _now()
            return _release(session, job, owner, reason)


def _release(session: Session, job: JobRow, owner: OwnerRef, reason: str) -> bool:
    details: dict[str, object] = {
        "by": SERVICE_ACTOR,
        "reason": f"its owner {owner.describe()} is gone: {reason}",
        "owner": owner.to_json(),
    }
    return release_locked(session, job, details)
