"""Pins that end: every service staging holds its nodes' datasets on a lease.

A staging's lease starts when it is submitted (``--pin-ttl``, else the operator's
``STAGEGATE_PIN_TTL``, never more than ``STAGEGATE_PIN_TTL_MAX``). Its owner ends it early with
``stagegate release``, extends it with ``stagegate renew`` (now + the TTL, audited as
``stage.renewed``), or lets it run out: then the service releases it as a release would
(``stage.released`` with ``by: stagegate`` and the reason), the datasets become evictable and
GB-hours stop accruing. Re-submitting with the same idempotency key returns the first staging
and leaves its lease alone: a retry must not have side effects.

The rules on a requested TTL are pure (:func:`checked_ttl`); the rest reads and writes the
``pin_leases`` table, each change and its audit event in one transaction, the job's row locked
first (as every staging change locks it), so a renewal and an expiry cannot both win.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.durations import format_duration_short
from stagegate.errors import InvalidInputError, NotFoundError, StagegateError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import job_event
from stagegate.ledger.models import JobRow, PinLeaseRow
from stagegate.ledger.staging_requests import release_locked
from stagegate.ledger.staging_views import StagingViews
from stagegate.ledger.tokens import Principal
from stagegate.states import StagingState

# Stagings in these states hold no pin: there is nothing to renew or expire.
ENDED = (StagingState.RELEASED, StagingState.FAILED, StagingState.DENIED)
SERVICE_ACTOR = "stagegate"
MIN_TTL_SECONDS = 60


class PinReleasedError(StagegateError):
    """The staging no longer holds its pins (released, failed or denied): stage it again."""


@dataclass(frozen=True, slots=True)
class Lease:
    ttl_seconds: int
    expires_at: datetime
    renewed_at: datetime | None
    renewals: int


def _now() -> datetime:
    return datetime.now(UTC)


def checked_ttl(requested: float | None, default: float, maximum: float) -> int:
    """The TTL a staging gets, in whole seconds: ``requested`` or the operator's ``default``.
    A TTL under a minute or over ``maximum`` is refused, naming the bound, rather than quietly
    cut: the job would otherwise lose its data earlier than it asked, or hold it longer."""
    ttl = default if requested is None else requested
    if not math.isfinite(ttl):
        raise InvalidInputError(f"pin TTL must be a number of seconds, not {ttl:g}")
    if ttl < MIN_TTL_SECONDS:
        raise InvalidInputError(f"pin TTL must be at least {MIN_TTL_SECONDS} s (1m), not {ttl:g} s")
    if ttl > maximum:
        raise InvalidInputError(
            f"pin TTL {format_duration_short(ttl)} is longer than this service allows "
            f"({format_duration_short(maximum)}, STAGEGATE_PIN_TTL_MAX): ask for less, and renew "
            "(`stagegate renew ID`) while the job runs"
        )
    return int(ttl)


def _lease(row: PinLeaseRow) -> Lease:
    return Lease(row.ttl_seconds, row.expires_at, row.renewed_at, row.renewals)


class PinLeases:
    """The pin leases of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def of(self, job_ids: Iterable[str]) -> dict[str, Lease]:
        """The leases of these stagings (those submitted before leases existed have none)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(select(PinLeaseRow).where(PinLeaseRow.job_id.in_(ids)))
            return {row.job_id: _lease(row) for row in rows}

    def renew(
        self, who: Principal, job_id: str, ttl_seconds: float | None, default: float, maximum: float
    ) -> Lease:
        """Extend the lease to now + ``ttl_seconds`` (default: the TTL it had, else ``default``). Only who may
        release it may renew it; someone else's staging is NotFound, as for a read."""
        StagingViews(self._ledger).visible(who, job_id)
        if who.role == "auditor":
            raise PermissionError("auditors read; they do not renew stagings")
        now = _now()
        with self._ledger.sessions.begin() as session:
            job = session.get(JobRow, job_id, with_for_update=True)
            if job is None:
                raise NotFoundError(f"no staging {job_id}")
            if job.state in ENDED:
                raise PinReleasedError(
                    f"staging {job_id} is {job.state} and holds no pin any more: stage the dataset again"
                )
            row = session.get(PinLeaseRow, job_id, with_for_update=True)
            # Default: the TTL it was given, else (a staging older than leases) the operator's.
            ttl = checked_ttl(
                ttl_seconds if ttl_seconds is not None else row.ttl_seconds if row else None, default, maximum
            )
            if row is None:
                row = PinLeaseRow.starting(job_id, ttl, now)
                session.add(row)
            row.ttl_seconds, row.expires_at = ttl, now + timedelta(seconds=ttl)
            row.renewed_at, row.renewals = now, row.renewals + 1
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(
                    job,
                    AuditAction.STAGE_RENEWED,
                    details={"by": who.user, "ttl_seconds": ttl, "expires_at": row.expires_at.isoformat()},
                ),
            )
            return _lease(row)

    def expire_due(self, now: datetime | None = None) -> list[str]:
        """Release every staging whose lease ran out; returns their ids. Safe to run from many
        workers at once: each staging is re-checked under its row lock, so it is released once."""
        now = now or _now()
        with self._ledger.read_session() as session, session.begin():
            due = list(
                session.scalars(
                    select(PinLeaseRow.job_id)
                    .join(JobRow, JobRow.id == PinLeaseRow.job_id)
                    .where(PinLeaseRow.expires_at <= now, JobRow.state.not_in(ENDED))
                    .order_by(PinLeaseRow.expires_at)
                )
            )
        return [job_id for job_id in due if self._expire(job_id, now)]

    def _expire(self, job_id: str, now: datetime) -> bool:
        with self._ledger.sessions.begin() as session:
            job = session.get(JobRow, job_id, with_for_update=True)
            row = session.get(PinLeaseRow, job_id, with_for_update=True)
            if job is None or row is None or job.state in ENDED or row.expires_at > now:
                return False  # renewed or released meanwhile
            return self._release_locked(session, job, row)

    def _release_locked(self, session: Session, job: JobRow, row: PinLeaseRow) -> bool:
        ttl = format_duration_short(row.ttl_seconds)
        details = {
            "by": SERVICE_ACTOR,
            "reason": f"pin lease expired: its TTL of {ttl} ran out at {row.expires_at.isoformat()}",
            "expired_at": row.expires_at.isoformat(),
            "ttl_seconds": row.ttl_seconds,
        }
        return release_locked(session, job, details)
