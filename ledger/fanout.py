"""Peer fan-out in the ledger: which nodes of a replicated staging read each batch from the
source, which peers hold a batch verified for the others to copy from, and where each batch
was read from.

A node's copy batch is done (``tasks.state = done``) only once every file of it is verified
and its BLAKE3 recorded in the manifest, so a done batch on a live node that serves peers is
one another node may copy from, at once: the fan-out is pipelined batch by batch. The readers
are chosen afresh each time the ledger is asked, from the nodes alive now, so a reader that
dies is replaced by the next node of the request, which then reads from the source.
"""

import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import NodeRow, TaskRow
from stagegate.ledger.nodes import ALIVE_WITHIN
from stagegate.ledger.tasks import TaskKey
from stagegate.states import TaskState

SOURCE = "source"  # the origin of a batch read from the staging's source


@dataclass(frozen=True, slots=True)
class Peer:
    """A node whose worker serves verified batches at ``url``."""

    node: str
    url: str


def source_readers(nodes: Sequence[str], serving: Collection[str], readers: int) -> frozenset[str]:
    """The nodes of a replicated staging that read every batch from the source: the first
    ``readers`` of ``nodes`` (in the request's order) whose worker is alive and serves peers.
    Every node reads the source when fan-out is off (``readers`` < 1) or no node can serve."""
    servers = [n for n in nodes if n in serving]
    if readers < 1 or not servers:
        return frozenset(nodes)
    return frozenset(servers[:readers])


def spread(peers: Sequence[Peer], receiver: str) -> list[Peer]:
    """``peers`` in the order ``receiver`` tries them: rotated by the receiver's name, so the
    receivers of one batch do not all ask the same peer first."""
    if not peers:
        return []
    ordered = sorted(peers, key=lambda p: p.node)
    turn = zlib.crc32(receiver.encode()) % len(ordered)
    return ordered[turn:] + ordered[:turn]


def origins_in(session: Session, job_id: str) -> dict[str, dict[str, int]]:
    """Per node, the bytes of the job's finished copy batches by origin (``source`` or a peer)."""
    rows = session.execute(
        select(TaskRow.node, TaskRow.origin, func.sum(TaskRow.bytes))
        .where(TaskRow.job_id == job_id, TaskRow.kind == "copy", TaskRow.state == TaskState.DONE)
        .group_by(TaskRow.node, TaskRow.origin)
    ).all()
    found: dict[str, dict[str, int]] = {}
    for node, origin, n in rows:
        found.setdefault(node, {})[origin or SOURCE] = int(n or 0)
    return found


class Fanout:
    """Fan-out decisions of one ledger, with ``readers`` source readers per replicated staging."""

    def __init__(self, ledger: Ledger, readers: int) -> None:
        self._ledger = ledger
        self.readers = readers

    def _serving(self, session: Session) -> dict[str, str]:
        since = datetime.now(UTC) - ALIVE_WITHIN
        rows = session.execute(
            select(NodeRow.name, NodeRow.peer_url).where(
                NodeRow.peer_url.is_not(None), NodeRow.last_heartbeat >= since
            )
        ).all()
        return {name: url for name, url in rows if url is not None}

    def sendable(self, keys: list[TaskKey], nodes: Sequence[str], replicated: bool) -> list[TaskKey]:
        """``keys`` without the copy batches that should wait for a peer: those of a node that is
        not a source reader, whose batch no other live serving node has verified yet."""
        if not replicated or self.readers < 1 or len(nodes) < 2:
            return keys
        copies = [k for k in keys if k.kind == "copy"]
        if not copies:
            return keys
        job_id = copies[0].job_id
        with self._ledger.read_session() as session, session.begin():
            serving = self._serving(session)
            # Only nodes that copy this staging can read for it: a node that had it cached
            # (a hit) has no batch to read or serve.
            copying = set(
                session.scalars(
                    select(TaskRow.node).where(TaskRow.job_id == job_id, TaskRow.kind == "copy").distinct()
                )
            )
            readers = source_readers([n for n in nodes if n in copying], serving, self.readers)
            waiting = [k for k in copies if k.node not in readers]
            if not waiting:
                return keys
            done = set(
                session.execute(
                    select(TaskRow.idx, TaskRow.node).where(
                        TaskRow.job_id == job_id,
                        TaskRow.kind == "copy",
                        TaskRow.state == TaskState.DONE,
                        TaskRow.idx.in_({k.idx for k in waiting}),
                        TaskRow.node.in_(list(serving)),
                    )
                ).all()
            )
        held = {(idx, node) for idx, node in done}
        return [
            k
            for k in keys
            if k.kind != "copy" or k.node in readers or any(i == k.idx and n != k.node for i, n in held)
        ]

    def holders(self, key: TaskKey) -> list[Peer]:
        """The live serving nodes other than ``key``'s that hold its batch verified, in the order
        ``key``'s node should try them."""
        with self._ledger.read_session() as session, session.begin():
            serving = self._serving(session)
            nodes = session.scalars(
                select(TaskRow.node).where(
                    TaskRow.job_id == key.job_id,
                    TaskRow.kind == "copy",
                    TaskRow.idx == key.idx,
                    TaskRow.state == TaskState.DONE,
                    TaskRow.node != key.node,
                )
            ).all()
        return spread([Peer(n, serving[n]) for n in nodes if n in serving], key.node)
