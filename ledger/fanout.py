"""Peer fan-out in the ledger: which nodes of a replicated staging read each batch from the
source, which peers hold a batch verified for the others to copy from, and where each batch
was read from.

A node's copy batch is done (``tasks.state = done``) only once every file of it is verified
and its BLAKE3 recorded in the manifest, so a done batch on a live node that serves peers is
one another node may copy from, at once: the fan-out is pipelined batch by batch. The readers
are chosen afresh each time the ledger is asked, from the nodes alive now, so a reader that
dies is replaced by the next node of the request, which then reads from the source.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import NodeRow, TaskRow
from stagegate.ledger.nodes import ALIVE_WITHIN
from stagegate.ledger.tasks import ACTIVE, TaskKey
from stagegate.settings import DEFAULT_FANOUT_PER_HOLDER
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


def spread(peers: Sequence[Peer], turn: int) -> list[Peer]:
    """``peers`` rotated by ``turn``, the receiver's place among the staging's nodes (sorted by
    name): consecutive receivers of one batch ask different peers first."""
    if not peers:
        return []
    ordered = sorted(peers, key=lambda p: p.node)
    turn %= len(ordered)
    return ordered[turn:] + ordered[:turn]


def least_served_first(peers: Sequence[Peer], turn: int, served: Mapping[str, int]) -> list[Peer]:
    """``peers`` in the order the receiver at ``turn`` (:func:`spread`) tries them: those that
    have served the fewest copies of the batch first (the readers, holders from the start, have
    served the most), each equal group spread. With :func:`released` bounding the copies in
    flight, the newest holders take the next round's receivers, and a batch spreads as a tree."""
    ordered: list[Peer] = []
    for count in sorted({served.get(p.node, 0) for p in peers}):
        ordered += spread([p for p in peers if served.get(p.node, 0) == count], turn)
    return ordered


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


def released(
    waiting: Sequence[TaskKey], holders: Mapping[int, int], in_flight: Mapping[int, int], per_holder: int
) -> list[TaskKey]:
    """Of receivers' ``waiting`` copy batches (in the order they would be sent), those that may
    go now: for each batch, while its copies from peers in flight stay under ``per_holder``
    per node holding it verified. The rest wait for a receiver to finish and become a holder
    too, so a batch reaches N nodes in about log(N) / log(1 + per_holder) copy times with no
    node serving more than ``per_holder`` copies of it on average, where every receiver asking
    the readers at once made the readers' CPU and NIC the limit of the whole staging."""
    room = {idx: n * per_holder - in_flight.get(idx, 0) for idx, n in holders.items()}
    sent = []
    for key in waiting:
        if room.get(key.idx, 0) > 0:
            room[key.idx] -= 1
            sent.append(key)
    return sent


class Fanout:
    """Fan-out decisions of one ledger, with ``readers`` source readers per replicated staging
    and up to ``per_holder`` copies of a batch from peers in flight per node holding it."""

    def __init__(self, ledger: Ledger, readers: int, per_holder: int = DEFAULT_FANOUT_PER_HOLDER) -> None:
        self._ledger = ledger
        self.readers = readers
        self.per_holder = per_holder

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
        not a source reader, whose batch no other live serving node has verified yet, or whose
        holders already serve as many copies of it as they may (:func:`released`). Two workers
        deciding at once may each release up to the limit: it bounds the load, not correctness."""
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
            # Per waiting batch, in one read: the live serving nodes holding it verified, and the
            # receivers' copies of it in flight.
            holders: dict[int, int] = {}
            in_flight: dict[int, int] = {}
            counts = session.execute(
                select(
                    TaskRow.idx,
                    func.count().filter(TaskRow.state == TaskState.DONE, TaskRow.node.in_(list(serving))),
                    func.count().filter(TaskRow.state.in_(ACTIVE), TaskRow.node.not_in(list(readers))),
                )
                .where(
                    TaskRow.job_id == job_id,
                    TaskRow.kind == "copy",
                    TaskRow.idx.in_({k.idx for k in waiting}),
                )
                .group_by(TaskRow.idx)
            )
            for idx, held, copying_now in counts:
                holders[idx], in_flight[idx] = int(held), int(copying_now)
        # A waiting batch is never held on its own node: a holder is always another node.
        go = set(released(waiting, holders, in_flight, self.per_holder))
        return [k for k in keys if k.kind != "copy" or k.node in readers or k in go]

    def holders(self, key: TaskKey) -> list[Peer]:
        """The live serving nodes other than ``key``'s that hold its batch verified, in the order
        ``key``'s node should try them (:func:`least_served_first`)."""
        with self._ledger.read_session() as session, session.begin():
            serving = self._serving(session)
            copies = session.execute(
                select(TaskRow.node, TaskRow.state, TaskRow.origin).where(
                    TaskRow.job_id == key.job_id, TaskRow.kind == "copy", TaskRow.idx == key.idx
                )
            ).all()
        served: dict[str, int] = {}
        for _, state, origin in copies:
            if state == TaskState.DONE and origin is not None:
                served[origin] = served.get(origin, 0) + 1
        done = [n for n, state, _ in copies if state == TaskState.DONE and n != key.node and n in serving]
        nodes = sorted(n for n, _, _ in copies)
        turn = nodes.index(key.node) if key.node in nodes else 0
        return least_served_first([Peer(n, serving[n]) for n in done], turn, served)
