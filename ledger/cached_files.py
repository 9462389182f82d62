"""The verified files of the datasets cached on one node, as their manifests record them: what
a new staging on that node may take instead of reading its source (delta staging).

Only ready datasets of the same node, only their own share of their manifest (a node holding
one shard holds only that key range), only entries copied and hashed (a BLAKE3 on record).
Which of them hold the same bytes as a new entry is decided by the worker
(:mod:`transfer.origins`); this module finds those that may, by revision or checksum, and
keeps a cached dataset's fingerprint current when a take or an eviction changed only the
link counts of files it shares.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import JobRow, ManifestEntryRow, NodeDatasetRow, TaskRow
from stagegate.states import DatasetState

# Bound on the revisions asked about in one query (a batch holds up to 1,000 files).
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CachedDatasetOnNode:
    """A ready dataset on a node, with what its sharing needs."""

    digest: str
    path: str
    fingerprint: str | None
    bytes: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """A verified file of a ready dataset on the node."""

    digest: str
    path: str  # the dataset's directory
    source: str  # the URL the dataset was staged from
    key: str
    size: int
    revision: str | None
    source_checksum: str | None
    blake3: str
    verification: str


class CachedFiles:
    """Lookups over the node caches of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def ready_on(self, node: str) -> list[CachedDatasetOnNode]:
        """Every ready dataset on ``node``."""
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(
                select(NodeDatasetRow)
                .where(NodeDatasetRow.node == node, NodeDatasetRow.state == DatasetState.READY)
                .order_by(NodeDatasetRow.created_at, NodeDatasetRow.digest)
            ).all()
            return [CachedDatasetOnNode(r.digest, r.path, r.fingerprint, r.bytes, r.created_at) for r in rows]

    def count_shared(self, node: str, counts: Mapping[str, tuple[int, int] | None]) -> None:
        """Record each ready dataset's (unique, sole) bytes on ``node`` (None: it shares nothing),
        as the worker found them on disk."""
        with self._ledger.sessions.begin() as session:
            for digest, pair in counts.items():
                unique, sole = pair if pair is not None else (None, None)
                session.execute(
                    update(NodeDatasetRow)
                    .where(
                        NodeDatasetRow.node == node,
                        NodeDatasetRow.digest == digest,
                        NodeDatasetRow.state == DatasetState.READY,
                    )
                    .values(unique_bytes=unique, sole_bytes=sole)
                )

    def matching(
        self, node: str, revisions: Iterable[str], checksums: Iterable[str], but: str
    ) -> list[CachedEntry]:
        """The verified files of the ready datasets on ``node`` (``but`` the one being written)
        whose revision is one of ``revisions`` or whose source checksum one of ``checksums``."""
        revisions, checksums = sorted(set(revisions)), sorted(set(checksums))
        if not revisions and not checksums:
            return []
        with self._ledger.read_session() as session, session.begin():
            datasets = session.execute(
                select(NodeDatasetRow.digest, NodeDatasetRow.path, JobRow.source, JobRow.id, JobRow.plan_job)
                .join(JobRow, JobRow.id == NodeDatasetRow.writer_job)
                .where(
                    NodeDatasetRow.node == node,
                    NodeDatasetRow.state == DatasetState.READY,
                    NodeDatasetRow.digest != but,
                )
            ).all()
            found: list[CachedEntry] = []
            for digest, path, source, writer, plan_job in datasets:
                first, last = session.execute(
                    select(func.min(TaskRow.key_from), func.max(TaskRow.key_to)).where(
                        TaskRow.job_id == writer, TaskRow.kind == "copy", TaskRow.node == node
                    )
                ).one()
                if first is None or last is None:
                    continue  # an empty share: nothing on disk to take
                for rows in _entries_matching(session, plan_job or writer, revisions, checksums):
                    found.extend(
                        CachedEntry(
                            digest,
                            path,
                            source,
                            r.key,
                            r.size,
                            r.revision,
                            r.source_checksum,
                            r.blake3,
                            r.verification or "local",
                        )
                        for r in rows
                        if r.blake3 is not None and first <= r.key <= last
                    )
            return found

    def refingerprint(self, node: str, digest: str, was: str, now: str) -> bool:
        """Record ``now`` as the fingerprint of the ready dataset ``digest`` if it still has
        ``was`` (the worker checked that only shared files' link counts moved in between)."""
        with self._ledger.sessions.begin() as session:
            done = session.execute(
                update(NodeDatasetRow)
                .where(
                    NodeDatasetRow.node == node,
                    NodeDatasetRow.digest == digest,
                    NodeDatasetRow.state == DatasetState.READY,
                    NodeDatasetRow.fingerprint == was,
                )
                .values(fingerprint=now)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]  # a CursorResult


def _entries_matching(
    session: Session, job_id: str, revisions: list[str], checksums: list[str]
) -> Iterator[list[ManifestEntryRow]]:
    """The job's manifest rows with one of ``revisions`` or ``checksums``, a chunk at a time."""
    for i in range(0, max(len(revisions), len(checksums)), _IN_CHUNK):
        wanted_revisions, wanted_checksums = revisions[i : i + _IN_CHUNK], checksums[i : i + _IN_CHUNK]
        conditions = []
        if wanted_revisions:
            conditions.append(ManifestEntryRow.revision.in_(wanted_revisions))
        if wanted_checksums:
            conditions.append(ManifestEntryRow.source_checksum.in_(wanted_checksums))
        yield list(
            session.scalars(
                select(ManifestEntryRow).where(ManifestEntryRow.job_id == job_id, or_(*conditions))
            ).all()
        )
