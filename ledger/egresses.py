"""Checkpoint egresses submitted to the service: the job row (kind ``egress``, the
:class:`stagegate.requests.EgressRequest` in ``params``), its one task on the node's queue,
and the read model the API answers with.

The API records the egress, its task and ``egress.requested`` in one transaction; the node's
worker (``workers/egress.py``) runs it and writes the rest of the trail.
"""

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from stagegate.actions import AuditAction
from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import job_event
from stagegate.ledger.models import AuditEventRow, JobRow
from stagegate.ledger.nodes import require_known
from stagegate.ledger.redact import redact_text
from stagegate.ledger.tasks import TaskKey, Tasks, new_task
from stagegate.ledger.tokens import Principal
from stagegate.paths import plain_path
from stagegate.requests import EgressRequest
from stagegate.states import EgressState, TaskState

SEES_ALL = ("steward", "auditor", "admin")
# What a job's state is called in the egress read model.


@dataclass(frozen=True, slots=True)
class Egress:
    id: str
    state: str  # pending | running | completed | failed | denied
    user: str
    project: str | None
    job: str | None
    node: str | None
    run_dir: str
    destination: str
    selected: list[str]
    bytes: int
    files: int
    created_at: datetime
    updated_at: datetime
    errors: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "user": self.user,
            "project": self.project,
            "job": self.job,
            "node": self.node,
            "run_dir": self.run_dir,
            "destination": self.destination,
            "selected": self.selected,
            "bytes": self.bytes,
            "files": self.files,
            "errors": self.errors,
            "reasons": self.reasons,
            "checksums": self.checksums,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _stored_request(job: JobRow) -> EgressRequest:
    loaded = json.loads(job.params or "{}")
    return EgressRequest.from_params(loaded if isinstance(loaded, dict) else {})


class Egresses:
    """The service's egresses in one ledger."""

    def __init__(self, ledger: Ledger, lease_seconds: float = 120.0) -> None:
        self._ledger = ledger
        self._tasks = Tasks(ledger, lease_seconds)

    def submit(self, who: Principal, request: EgressRequest) -> tuple[Egress, TaskKey]:
        """Record the egress, its task on ``request.node``'s queue and ``egress.requested``;
        returns the egress and the task to send (after this commit). The request is stored as
        it was submitted, with the requester's project."""
        node = request.node
        if not node:
            raise InvalidInputError("node is required: the node whose worker holds the run directory")
        destination = request.destination
        if destination.startswith(("/", "file://")):
            # A path is written exactly as named (the worker follows no link): one spelling only.
            plain_path(destination.removeprefix("file://"), "the destination")
        with self._ledger.read_session() as session, session.begin():
            require_known(session, [node])
        now = datetime.now(UTC)
        request = replace(request, project=who.project)
        job = JobRow(
            id=str(uuid.uuid4()),
            kind="egress",
            state=EgressState.PENDING,
            actor=who.user,
            role=who.role,
            project=who.project,
            job_ref=request.job_ref,
            source=request.source,
            destination=destination,
            manifest_digest=None,
            files=0,
            bytes=0,
            policy_version=None,
            error=None,
            created_at=now,
            updated_at=now,
            nodes=json.dumps([node]),
            params=json.dumps(request.to_params(), sort_keys=True),
        )
        key = TaskKey(job.id, "egress", node, 0)
        details = request.selection_details()
        with self._ledger.sessions.begin() as session:
            session.add(job)
            session.add(new_task(key, TaskState.QUEUED, lease=self._tasks.lease.total_seconds()))
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(job, AuditAction.EGRESS_REQUESTED, details=details),
            )
        return self.view(job.id), key

    def fail(self, job_id: str, error: str, error_type: str) -> None:
        """Fail an egress that ended before its run could audit the outcome: the state and its
        ``egress.failed`` event commit together. One already failed or denied stays as it is."""
        with self._ledger.sessions.begin() as session:
            job = session.get(JobRow, job_id, with_for_update=True)
            if job is None or job.kind != "egress":
                raise NotFoundError(f"no egress {job_id}")
            if job.state in (EgressState.FAILED, EgressState.DENIED):
                return
            job.state, job.error, job.updated_at = EgressState.FAILED, redact_text(error), datetime.now(UTC)
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(job, AuditAction.EGRESS_FAILED, reasons=(error,), details={"error": error_type}),
            )

    def params(self, job_id: str) -> EgressRequest:
        """The request as it was submitted (with the requester's project)."""
        with self._ledger.read_session() as session, session.begin():
            job = session.get(JobRow, job_id)
            if job is None or job.kind != "egress":
                raise NotFoundError(f"no egress {job_id}")
            return _stored_request(job)

    def view(self, job_id: str) -> Egress:
        with self._ledger.read_session() as session, session.begin():
            job = session.get(JobRow, job_id)
            if job is None or job.kind != "egress":
                raise NotFoundError(f"no egress {job_id}")
            events = list(
                session.execute(
                    select(AuditEventRow.action, AuditEventRow.reasons, AuditEventRow.details)
                    .where(AuditEventRow.job_id == job_id)
                    .order_by(AuditEventRow.seq)
                )
            )
        request = _stored_request(job)
        selected: list[str] = []
        reasons: list[str] = []
        errors: list[str] = []
        checksums: dict[str, str] = {}
        for action, reasons_json, details_json in events:
            details = json.loads(details_json)
            if action in (AuditAction.POLICY_ALLOWED, AuditAction.POLICY_DENIED):
                selected = list(details.get("selected") or selected)
                if action == AuditAction.POLICY_DENIED:
                    reasons = list(json.loads(reasons_json))
            elif action == AuditAction.EGRESS_COMPLETED:
                selected = list(details.get("selected") or selected)
                checksums = dict(details.get("checksums") or {})
            elif action == AuditAction.EGRESS_FAILED:
                errors = list(json.loads(reasons_json))
        return Egress(
            id=job.id,
            state=job.state,
            user=job.actor,
            project=job.project,
            job=job.job_ref,
            node=request.node,
            run_dir=request.run_dir,
            destination=job.destination,
            selected=selected,
            bytes=job.bytes,
            files=job.files,
            created_at=job.created_at,
            updated_at=job.updated_at,
            errors=errors,
            reasons=reasons,
            checksums=checksums,
        )

    def visible(self, who: Principal, job_id: str) -> Egress:
        """The egress if ``who`` may see it (owner, auditor, admin); else NotFound, not Forbidden."""
        egress = self.view(job_id)
        if who.role not in SEES_ALL and egress.user != who.user:
            raise NotFoundError(f"no egress {job_id}")
        return egress
