"""Manifest entries: every object of a job, added in bulk and completed as files are copied.

Entries stream in and out in chunks, so a job of millions of objects never sits in memory.
Each chunk is its own transaction: on SQLite a single transaction over millions of rows
would hold the write lock, and so stall every audit append, for its whole duration.
"""

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from stagegate.actions import AuditAction
from stagegate.errors import ExistsError, NotFoundError
from stagegate.ledger.database import READ_ONLY, Ledger
from stagegate.ledger.models import AuditEventRow, JobRow, ManifestEntryRow

CHUNK_SIZE = 5000

_T = TypeVar("_T")

_entries = cast(Table, ManifestEntryRow.__table__)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One object of a job. ``blake3`` and ``verification`` stay None until it is copied."""

    key: str
    size: int
    revision: str | None = None
    version: str | None = None
    source_checksum: str | None = None
    label: str | None = None
    blake3: str | None = None
    verification: str | None = None
    mtime: float | None = None
    checksum_algorithm: str | None = None
    own_label: str | None = None


@dataclass(frozen=True, slots=True)
class CopiedEntry:
    """What copying one entry established."""

    key: str
    blake3: str
    verification: str
    label: str | None = None  # the effective label decided at copy time, if it was decided then


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _entry_params(job_id: str, entry: ManifestEntry) -> dict[str, object]:
    return {
        "job_id": job_id,
        "key": entry.key,
        "size": entry.size,
        "revision": entry.revision,
        "version": entry.version,
        "source_checksum": entry.source_checksum,
        "label": entry.label,
        "blake3": entry.blake3,
        "verification": entry.verification,
        "mtime": entry.mtime,
        "checksum_algorithm": entry.checksum_algorithm,
        "own_label": entry.own_label,
    }


class Manifests:
    """The manifest entries of one ledger's jobs."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _require_job(self, job_id: str) -> None:
        with self._ledger.read_session() as session, session.begin():
            if session.get(JobRow, job_id) is None:
                raise NotFoundError(f"no job {job_id}")

    def add(self, job_id: str, entries: Iterable[ManifestEntry], chunk_size: int = CHUNK_SIZE) -> int:
        """Add ``entries`` to the job's manifest, committing every ``chunk_size``; returns how many.

        A key already in the manifest raises :class:`ExistsError`; chunks committed before it stay.
        """
        self._require_job(job_id)
        added = 0
        for chunk in _chunks(entries, chunk_size):
            try:
                with self._ledger.engine.begin() as conn:
                    conn.execute(insert(_entries), [_entry_params(job_id, e) for e in chunk])
            except IntegrityError as exc:
                raise ExistsError(
                    f"a key in entries {added}..{added + len(chunk) - 1} is already in job {job_id}"
                ) from exc
            added += len(chunk)
        return added

    def record_copies(self, job_id: str, copies: Iterable[CopiedEntry], chunk_size: int = CHUNK_SIZE) -> int:
        """Store each copied entry's blake3 and verification (and a label decided at copy time);
        returns how many were updated.

        A key not in the manifest raises :class:`NotFoundError` and its chunk is not applied.
        """
        statement = (
            update(_entries)
            .where(_entries.c.job_id == bindparam("b_job_id"), _entries.c.key == bindparam("b_key"))
            .values(blake3=bindparam("b_blake3"), verification=bindparam("b_verification"))
        )
        # An object whose own label was read only at copy time (S3 tags) may have raised its
        # planned label: the manifest keeps the effective one, which lineage reads.
        relabel = (
            update(_entries)
            .where(_entries.c.job_id == bindparam("b_job_id"), _entries.c.key == bindparam("b_key"))
            .values(label=bindparam("b_label"))
        )
        updated = 0
        for chunk in _chunks(copies, chunk_size):
            params = [
                {"b_job_id": job_id, "b_key": c.key, "b_blake3": c.blake3, "b_verification": c.verification}
                for c in chunk
            ]
            relabelled = [{"b_job_id": job_id, "b_key": c.key, "b_label": c.label} for c in chunk if c.label]
            with self._ledger.engine.begin() as conn:
                result = conn.execute(statement, params)
                if result.rowcount != len(chunk):
                    raise NotFoundError(f"{len(chunk) - result.rowcount} copied keys are not in job {job_id}")
                if relabelled:
                    conn.execute(relabel, relabelled)
            updated += len(chunk)
        return updated

    def clear(self, job_id: str) -> None:
        """Forget the job's entries: a plan step run again after a crash starts clean."""
        with self._ledger.engine.begin() as conn:
            conn.execute(delete(_entries).where(_entries.c.job_id == job_id))

    def entries(
        self,
        job_id: str,
        *,
        after: str | None = None,
        first: str | None = None,
        through: str | None = None,
        page_size: int = CHUNK_SIZE,
    ) -> Iterator[ManifestEntry]:
        """The job's entries in key order (by code point), streamed a page at a time; ``after``
        resumes past a key; ``first`` and ``through`` bound a batch's key range (both inclusive)."""
        last = after
        while True:
            statement = select(_entries).where(_entries.c.job_id == job_id)
            if last is not None:
                statement = statement.where(_entries.c.key > last)
            if first is not None:
                statement = statement.where(_entries.c.key >= first)
            if through is not None:
                statement = statement.where(_entries.c.key <= through)
            with self._ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                rows = conn.execute(statement.order_by(_entries.c.key).limit(page_size)).all()
            for row in rows:
                yield ManifestEntry(
                    key=row.key,
                    size=row.size,
                    revision=row.revision,
                    version=row.version,
                    source_checksum=row.source_checksum,
                    label=row.label,
                    blake3=row.blake3,
                    verification=row.verification,
                    mtime=row.mtime,
                    checksum_algorithm=row.checksum_algorithm,
                    own_label=row.own_label,
                )
            if len(rows) < page_size:
                return
            last = rows[-1].key

    def count(self, job_id: str) -> int:
        with self._ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(_entries).where(_entries.c.job_id == job_id)
                ).scalar_one()
            )

    def labels_for_job_ref(self, job_ref: str, actor: str, project: str | None = None) -> set[str]:
        """The resolved labels of every object the requester staged under ``job_ref``: the
        entries of stage jobs with that reference, run by ``actor`` (or, if ``project`` is
        given, by anyone in that project), that the policy allowed (a ``policy.allowed``
        event), whatever became of them after. A checkpoint trained under ``job_ref``
        inherits the highest. Someone else's stagings never count: lineage is recorded, not
        claimed."""
        allowed = select(AuditEventRow.job_id).where(
            AuditEventRow.action == AuditAction.POLICY_ALLOWED, AuditEventRow.job_ref == job_ref
        )
        statement = (
            select(_entries.c.label)
            .distinct()
            # A staging that followed a shared plan reads its labels from that plan's manifest.
            .join(JobRow, func.coalesce(JobRow.plan_job, JobRow.id) == _entries.c.job_id)
            .where(
                JobRow.job_ref == job_ref,
                JobRow.kind == "stage",
                JobRow.id.in_(allowed),
                _requesters(actor, project),
            )
        )
        with self._ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return {row[0] for row in conn.execute(statement) if row[0] is not None}

    def staged_only_by_others(self, job_ref: str, actor: str, project: str | None = None) -> bool:
        """True if stagings under ``job_ref`` exist but none is the requester's (or their
        project's): naming that reference claims someone else's lineage."""
        mine = _requesters(actor, project)
        statement = select(func.count().filter(mine), func.count()).where(
            JobRow.job_ref == job_ref, JobRow.kind == "stage"
        )
        with self._ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            own, every = conn.execute(statement.select_from(JobRow)).one()
        return int(own) == 0 and int(every) > 0


def _requesters(actor: str, project: str | None) -> ColumnElement[bool]:
    if project is None:
        return JobRow.actor == actor
    return or_(JobRow.actor == actor, JobRow.project == project)
