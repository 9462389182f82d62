"""Jobs: one row per stage or egress request, updated as it runs."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from stagegate.errors import ExistsError, InvalidInputError, NotFoundError
from stagegate.ledger.database import Ledger
from stagegate.ledger.models import JobRow
from stagegate.ledger.redact import redact_text, redact_url

JobKind = Literal["stage", "egress"]


class _Keep(Enum):
    KEEP = "keep"


# Default of Jobs.update's fields: "leave as is", which None cannot mean (None clears error).
KEEP = _Keep.KEEP


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    state: str
    actor: str
    role: str
    job_ref: str | None
    source: str
    destination: str
    manifest_digest: str | None
    files: int
    bytes: int
    policy_version: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def _to_job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        state=row.state,
        actor=row.actor,
        role=row.role,
        job_ref=row.job_ref,
        source=row.source,
        destination=row.destination,
        manifest_digest=row.manifest_digest,
        files=row.files,
        bytes=row.bytes,
        policy_version=row.policy_version,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Jobs:
    """The jobs table of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def create(
        self,
        *,
        kind: JobKind,
        actor: str,
        role: str,
        source: str,
        destination: str,
        job_ref: str | None = None,
        state: str = "queued",
        manifest_digest: str | None = None,
        files: int = 0,
        bytes: int = 0,
        policy_version: str | None = None,
        job_id: str | None = None,
    ) -> Job:
        """A new job; its id is a fresh UUID unless ``job_id`` is given. Source and destination are
        stored redacted, as in the audit trail: workers take credentials from their environment."""
        if kind not in get_args(JobKind):
            raise InvalidInputError(f"job kind must be one of {get_args(JobKind)}, not {kind!r}")
        now = datetime.now(UTC)
        row = JobRow(
            id=job_id or str(uuid.uuid4()),
            kind=kind,
            state=state,
            actor=actor,
            role=role,
            job_ref=job_ref,
            source=redact_url(source),
            destination=redact_url(destination),
            manifest_digest=manifest_digest,
            files=files,
            bytes=bytes,
            policy_version=policy_version,
            error=None,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._ledger.sessions.begin() as session:
                session.add(row)
                session.flush()
                return _to_job(row)
        except IntegrityError as exc:
            raise ExistsError(f"job {row.id} already exists") from exc

    def get(self, job_id: str) -> Job:
        with self._ledger.read_session() as session, session.begin():
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            return _to_job(row)

    def find(self, job_ref: str) -> list[Job]:
        """Jobs carrying the user's reference ``job_ref``, oldest first."""
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(
                select(JobRow).where(JobRow.job_ref == job_ref).order_by(JobRow.created_at)
            )
            return [_to_job(row) for row in rows]

    def embedded_stagings(self, actor: str, limit: int = 100, state: str | None = None) -> list[Job]:
        """``actor``'s stagings run in this process (``stage --to``), newest first; only those
        in ``state`` if given (chosen before the limit, so the limit counts only those)."""
        query = select(JobRow).where(JobRow.kind == "stage", JobRow.mode.is_(None), JobRow.actor == actor)
        if state is not None:
            query = query.where(JobRow.state == state)
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(query.order_by(JobRow.created_at.desc()).limit(limit))
            return [_to_job(row) for row in rows]

    def update(
        self,
        job_id: str,
        *,
        state: str | _Keep = KEEP,
        manifest_digest: str | _Keep | None = KEEP,
        files: int | _Keep = KEEP,
        bytes: int | _Keep = KEEP,
        policy_version: str | _Keep | None = KEEP,
        error: str | _Keep | None = KEEP,
    ) -> Job:
        """Change a job's state or summary; fields left at ``KEEP`` stay as they are."""
        with self._ledger.sessions.begin() as session:
            row = session.get(JobRow, job_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            if not isinstance(state, _Keep):
                row.state = state
            if not isinstance(manifest_digest, _Keep):
                row.manifest_digest = manifest_digest
            if not isinstance(files, _Keep):
                row.files = files
            if not isinstance(bytes, _Keep):
                row.bytes = bytes
            if not isinstance(policy_version, _Keep):
                row.policy_version = policy_version
            if not isinstance(error, _Keep):
                row.error = None if error is None else redact_text(error)  # errors quote URLs
            row.updated_at = datetime.now(UTC)
            session.flush()
            return _to_job(row)
