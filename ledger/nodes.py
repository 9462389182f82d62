"""Nodes and what their NVMe holds: heartbeats, cached datasets, pins, evictions.

A node worker says hello and heartbeats here; admission (in :mod:`ledger.staging_steps`) reads
and changes the cache rows in the same transaction as the staging it admits.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from stagegate.errors import InvalidInputError
from stagegate.ledger.admission import CachedDataset
from stagegate.ledger.database import Ledger
from stagegate.ledger.models import NodeDatasetRow, NodeRow, PinRow
from stagegate.states import DatasetState

# Every node worker heartbeats this often, from a thread that does nothing else (so a long
# reconcile pass or checkpoint signing never delays it).
HEARTBEAT_EVERY = timedelta(seconds=5)
# A node whose worker missed three heartbeats in a row is shown as not alive: a dead worker is
# reported within 15 s, not a minute, and one slow database round trip is not a death.
ALIVE_WITHIN = 3 * HEARTBEAT_EVERY
# On-disk and in-ledger states of a cached dataset; "writing" and "ready" can be pinned.
HOLDING = (DatasetState.WRITING, DatasetState.READY, DatasetState.EVICTING, DatasetState.DELETING)


@dataclass(frozen=True, slots=True)
class CachedDatasetView:
    digest: str
    path: str
    files: int
    bytes: int
    state: str
    pins: int
    last_used: datetime


@dataclass(frozen=True, slots=True)
class Eviction:
    """A dataset admission chose to evict, now ``deleting``: its directory is the node's to remove."""

    digest: str
    path: str


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    root: str
    capacity: int
    used: int
    pinned: int
    last_heartbeat: datetime
    alive: bool
    datasets: list[CachedDatasetView]

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used)


def dataset_path(root: str, digest: str) -> str:
    """Where a node keeps the dataset of ``digest``: named by content, so two stagings of the
    same data find the same directory."""
    return f"{root.rstrip('/')}/datasets/{digest}"


def require_known(session: Session, names: Sequence[str]) -> None:
    """Refuse node names no worker ever registered: a typo must fail now, not queue forever."""
    known = set(session.scalars(select(NodeRow.name).where(NodeRow.name.in_(list(names)))))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(f"unknown node(s): {', '.join(unknown)} (no worker has registered them)")


def held_in(session: Session, node: str) -> list[CachedDataset]:
    """What occupies ``node``'s capacity, for admission (rows locked on PostgreSQL)."""
    pinned = select(PinRow.digest).where(PinRow.node == node)
    rows = session.execute(
        select(NodeDatasetRow, NodeDatasetRow.digest.in_(pinned))
        .where(NodeDatasetRow.node == node)
        .with_for_update(of=NodeDatasetRow)
    ).all()
    # Delta staging: a dataset being written counts on taking files from these; kept as pinned.
    taken_from = {
        digest
        for r in rows
        if r[0].state == DatasetState.WRITING and r[0].takes_from
        for digest in json.loads(r[0].takes_from)
    }
    return [
        CachedDataset(
            digest=r[0].digest,
            bytes=r[0].bytes,
            state=r[0].state,
            pinned=bool(r[1]) or r[0].digest in taken_from,
            last_used=r[0].last_used,
            unique_bytes=r[0].unique_bytes,
            sole_bytes=r[0].sole_bytes,
        )
        for r in rows
    ]


class Nodes:
    """The nodes table and node caches of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def heartbeat(
        self, name: str, root: str, capacity: int, worker: str, peer_url: str | None = None
    ) -> None:
        """Say ``name`` is alive, and where its worker serves peers (None: it does not)."""
        now = datetime.now(UTC)
        values = {"name": name, "root": root, "capacity": capacity, "worker": worker, "peer_url": peer_url}
        insert = postgresql.insert if self._ledger.dialect == "postgresql" else sqlite.insert
        statement = insert(NodeRow).values(**values, started_at=now, last_heartbeat=now)
        statement = statement.on_conflict_do_update(
            index_elements=[NodeRow.name], set_={**values, "last_heartbeat": now}
        )
        with self._ledger.sessions.begin() as session:
            session.execute(statement)

    def names(self) -> set[str]:
        with self._ledger.read_session() as session, session.begin():
            return set(session.scalars(select(NodeRow.name)))

    def roots(self, names: list[str]) -> dict[str, str]:
        with self._ledger.read_session() as session, session.begin():
            rows = session.execute(select(NodeRow.name, NodeRow.root).where(NodeRow.name.in_(names))).all()
            return {name: root for name, root in rows}

    def all(self) -> list[NodeView]:
        now = datetime.now(UTC)
        with self._ledger.read_session() as session, session.begin():
            nodes = session.scalars(select(NodeRow).order_by(NodeRow.name)).all()
            # Keyed by (node, digest) in Python: PostgreSQL text cannot hold the NUL a SQL-side
            # concatenated key would need.
            pins = {
                (node, digest): count
                for node, digest, count in session.execute(
                    select(PinRow.node, PinRow.digest, func.count()).group_by(PinRow.node, PinRow.digest)
                ).all()
            }
            datasets: dict[str, list[CachedDatasetView]] = {}
            counted: dict[str, int] = {}  # per node, shared files once (delta staging's links)
            for row in session.scalars(select(NodeDatasetRow).order_by(NodeDatasetRow.last_used.desc())):
                datasets.setdefault(row.node, []).append(
                    CachedDatasetView(
                        digest=row.digest,
                        path=row.path,
                        files=row.files,
                        bytes=row.bytes,
                        state=row.state,
                        pins=int(pins.get((row.node, row.digest), 0)),
                        last_used=row.last_used,
                    )
                )
                if row.state in HOLDING:
                    counted[row.node] = counted.get(row.node, 0) + (
                        row.bytes if row.unique_bytes is None else row.unique_bytes
                    )
            views = []
            for node in nodes:
                held = datasets.get(node.name, [])
                views.append(
                    NodeView(
                        name=node.name,
                        root=node.root,
                        capacity=node.capacity,
                        used=counted.get(node.name, 0),
                        pinned=sum(d.bytes for d in held if d.pins),
                        last_heartbeat=node.last_heartbeat,
                        alive=now - node.last_heartbeat < ALIVE_WITHIN,
                        datasets=held,
                    )
                )
            return views

    def written_by(self, node: str, job_id: str) -> CachedDatasetView | None:
        """The dataset ``job_id`` is writing (or wrote) on ``node``."""
        with self._ledger.read_session() as session, session.begin():
            row = session.scalar(
                select(NodeDatasetRow).where(NodeDatasetRow.node == node, NodeDatasetRow.writer_job == job_id)
            )
            if row is None:
                return None
            return CachedDatasetView(row.digest, row.path, row.files, row.bytes, row.state, 0, row.last_used)

    def claim_evictions(self, node: str) -> list[Eviction]:
        """The node's datasets chosen for eviction, now marked ``deleting``:
        the caller removes the directories, then calls :meth:`evicted`."""
        with self._ledger.sessions.begin() as session:
            rows = session.execute(
                select(NodeDatasetRow.digest, NodeDatasetRow.path)
                .where(NodeDatasetRow.node == node, NodeDatasetRow.state == DatasetState.EVICTING)
                .with_for_update()
            ).all()
            if rows:
                session.execute(
                    update(NodeDatasetRow)
                    .where(NodeDatasetRow.node == node, NodeDatasetRow.digest.in_([r[0] for r in rows]))
                    .values(state=DatasetState.DELETING)
                )
            return [Eviction(digest, path) for digest, path in rows]

    def evicted(self, node: str, digest: str) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(
                delete(NodeDatasetRow).where(
                    NodeDatasetRow.node == node,
                    NodeDatasetRow.digest == digest,
                    NodeDatasetRow.state == DatasetState.DELETING,
                )
            )


def nodes_json(names: list[str]) -> str:
    return json.dumps(names)
