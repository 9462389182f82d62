"""The requesters' side of service stagings: submit one (idempotently) and release it.

A submission and its plan task (and the ``stage.requested`` event) commit in one transaction;
the caller sends the returned tasks to the broker after the commit. Where a fresh shared plan
may be followed at once (``ledger.submit_follow``), the same transaction admits the staging
instead of queueing its plan, and the tasks returned are its nodes' cache-hit checks.
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.confinement import SourceRules
from stagegate.errors import ExistsError, InvalidInputError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import job_event
from stagegate.ledger.models import JobRow, PinLeaseRow, PinOwnerRow
from stagegate.ledger.nodes import require_known
from stagegate.ledger.plan_shares import PlanCut
from stagegate.ledger.staging_steps import filters_of, follow_in, let_go, lock_staging
from stagegate.ledger.staging_views import Staging, StagingViews
from stagegate.ledger.submit_follow import follow_details, fresh_plan_in, portions_on_hand
from stagegate.ledger.tasks import TaskKey, Tasks, new_task
from stagegate.ledger.tokens import Principal
from stagegate.requests import StagingMode, StagingRequest
from stagegate.states import StagingState, TaskState

Mode = StagingMode


def destination_of(nodes: Sequence[str]) -> str:
    return "nodes:" + ",".join(nodes)


def _now() -> datetime:
    return datetime.now(UTC)


class StagingRequests:
    """Stagings as requesters submit and release them."""

    def __init__(
        self,
        ledger: Ledger,
        lease_seconds: float = 120.0,
        sources: SourceRules | None = None,
        plans: PlanCut | None = None,
    ) -> None:
        self._ledger = ledger
        # What requesters may have the workers read; by default S3 only (see stagegate.confinement).
        self._sources = sources or SourceRules()
        # How the workers cut plans: given, a submission follows a fresh one itself
        # (ledger.submit_follow); without, every submission queues its plan task.
        self._plans = plans
        self._tasks = Tasks(ledger, lease_seconds)
        self._views = StagingViews(ledger)

    def submit(
        self,
        who: Principal,
        request: StagingRequest | None = None,
        *,
        source: str = "",
        nodes: Sequence[str] = (),
        mode: Mode = "replicate",
        job_ref: str | None = None,
        idempotency_key: str | None = None,
        pin_ttl_seconds: int | None = None,
    ) -> tuple[Staging, bool, list[TaskKey]]:
        """Record ``request`` (or the one the keywords spell) and its plan task; (staging,
        created, tasks to send). With ``pin_ttl_seconds`` its pins are leased for that long from
        now (``ledger.pins``); without, they last until released.

        The same ``idempotency_key`` from the same user returns the first staging, created False.
        """
        if request is None:
            request = StagingRequest(
                source, nodes=tuple(nodes), mode=mode, job_ref=job_ref, idempotency_key=idempotency_key
            )
        if request.destination is not None:
            raise InvalidInputError("a service staging goes onto nodes, not into a directory")
        source, nodes, mode = request.source, request.nodes, request.mode
        job_ref, idempotency_key = request.job_ref, request.idempotency_key
        self._sources.check(source, who.user, who.project)
        if idempotency_key is not None:
            existing = self._by_idempotency_key(who.user, idempotency_key)
            if existing is not None:
                return self._same_request(existing, request), False, []
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
            params=json.dumps({"include": list(request.include), "exclude": list(request.exclude)}),
        )
        try:
            with self._ledger.sessions.begin() as session:
                require_known(session, nodes)  # in the write: one transaction per submission, not two
                session.add(job)
                if pin_ttl_seconds is not None:
                    session.add(PinLeaseRow.starting(job.id, pin_ttl_seconds, now))
                if request.owner is not None:
                    session.add(PinOwnerRow.starting(job.id, request.owner, now))
                # Both events last: the chain's append lock is held through one INSERT and the
                # commit, not through the admission.
                with AuditTrail.appending_last(session.connection()):
                    session.flush()
                    AuditTrail.append_in(
                        session.connection(),
                        job_event(job, AuditAction.STAGE_REQUESTED, details=_requested_details(request)),
                    )
                    followed = self._followed_in(session, job, now)
                    to_send = self._plan_task_in(session, job) if followed is None else followed
        except IntegrityError as exc:
            # The same key submitted twice at once: the other request won; answer with its staging.
            if idempotency_key is not None:
                existing = self._by_idempotency_key(who.user, idempotency_key)
                if existing is not None:
                    return self._same_request(existing, request), False, []
            raise ExistsError(f"staging {job.id} already exists") from exc
        return self._views.view(job.id), True, to_send

    def _plan_task_in(self, session: Session, job: JobRow) -> list[TaskKey]:
        plan = TaskKey(job.id, "plan", "", 0)
        session.add(new_task(plan, TaskState.QUEUED, lease=self._tasks.lease.total_seconds()))
        return [plan]

    def _followed_in(self, session: Session, job: JobRow, now: datetime) -> list[TaskKey] | None:
        """Follow a fresh shared plan now, if the workers would let ``job`` follow it
        (``ledger.submit_follow``): admitted in this transaction; the cache-hit checks to send
        (none where the only nodes are being written by another staging: it is ready when that
        copy is). None if it may not: then its plan task decides."""
        if self._plans is None:
            return None
        plan = fresh_plan_in(session, job, self._plans, now)
        if plan is None:
            return None
        portions = portions_on_hand(session, plan, job.mode, json.loads(job.nodes or "[]"), now)
        if portions is None:
            return None
        follow_in(session, job, plan, portions, follow_details(plan))
        return Tasks.queue_waiting_checks_in(session, [job.id], self._tasks.lease)

    def _same_request(self, job_id: str, request: StagingRequest) -> Staging:
        """The staging a repeated key names, if the request is the same; a different request
        under a used key is a client bug, refused rather than silently answered."""
        staging = self._views.view(job_id)
        asked = (request.source, list(request.nodes), request.mode, request.include, request.exclude)
        first = (staging.source, [n.node for n in staging.nodes], staging.mode, *self._filters_of(job_id))
        if first != asked:
            raise ExistsError(
                f"idempotency key already used for staging {job_id} with a different source, nodes, "
                "mode or filters"
            )
        return staging

    def _filters_of(self, job_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        with self._ledger.read_session() as session, session.begin():
            row = session.get(JobRow, job_id)
            return filters_of(row) if row is not None else ((), ())

    def _by_idempotency_key(self, user: str, key: str) -> str | None:
        with self._ledger.read_session() as session, session.begin():
            return session.scalar(
                select(JobRow.id).where(JobRow.actor == user, JobRow.idempotency_key == key)
            )

    def release(self, who: Principal, job_id: str) -> Staging:
        """Unpin the staging's datasets (they become evictable), or cancel it if still running."""
        self._views.visible(who, job_id)
        if who.role == "auditor":
            raise PermissionError("auditors read; they do not release stagings")
        with self._ledger.sessions.begin() as session:
            release_locked(session, lock_staging(session, job_id), {"by": who.user})
        return self._views.view(job_id)


def _requested_details(request: StagingRequest) -> dict[str, object]:
    """What ``stage.requested`` records beyond the job's own columns."""
    if request.owner is None:
        return {"mode": request.mode}
    return {"mode": request.mode, "owner": request.owner.to_json()}


def release_locked(session: Session, job: JobRow, details: dict[str, object]) -> bool:
    """Release ``job``, whose row the caller holds locked (``ledger.pins`` expires leases
    through this); ``details`` say by whom and why. False if nothing was held any more."""
    if job.state in (StagingState.RELEASED, StagingState.DENIED, StagingState.FAILED):
        return False  # nothing is pinned or running; its outcome stays on record
    was = job.state
    let_go(session, job, keep_for_others=True)
    job.state, job.updated_at = StagingState.RELEASED, _now()
    session.flush()
    AuditTrail.append_in(
        session.connection(), job_event(job, AuditAction.STAGE_RELEASED, details={**details, "was": was})
    )
    return True
