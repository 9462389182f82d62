"""The Merkle tree over the audit events, stored as its perfect subtrees (``audit_tree_nodes``).

Extending the tree reads the O(log n) subtrees of its compact range and then only the new
events; a proof reads O(log n) stored subtrees. Nothing ever holds the whole log. The tree
is derived data: whoever checks a checkpoint against the events recomputes it from them
(``ledger.log_check``) and trusts no stored subtree.
"""

from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select

from stagegate.errors import StagegateError
from stagegate.ledger.audit import row_event
from stagegate.ledger.chain import GENESIS_HASH, event_hash, leaf_bytes
from stagegate.ledger.events import AuditEvent
from stagegate.ledger.merkle import CompactRange, leaf_hash
from stagegate.ledger.models import AuditEventRow, AuditTreeNodeRow

_nodes = cast(Table, AuditTreeNodeRow.__table__)
_events = cast(Table, AuditEventRow.__table__)


class TreeError(StagegateError):
    """The events cannot be added to the tree as they are: the trail was tampered with."""


def event_leaf(event: AuditEvent) -> bytes:
    return leaf_hash(leaf_bytes(event.hashed_fields()))


def tree_size(conn: Connection) -> int:
    found = conn.execute(select(func.max(_nodes.c.idx)).where(_nodes.c.level == 0)).scalar()
    return 0 if found is None else int(found) + 1


class StoredSubtrees:
    """``subtree(level, index)`` from the table, each read once."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._cache:
            found = self._conn.execute(
                select(_nodes.c.hash).where(_nodes.c.level == level, _nodes.c.idx == index)
            ).scalar()
            if found is None:
                raise TreeError(f"the stored tree lacks its subtree {level}/{index}")
            self._cache[key] = bytes(found)
        return self._cache[key]

    def leaves(self, first: int, last: int) -> dict[int, bytes]:
        """The stored leaf hashes of leaves ``first`` to ``last`` (inclusive) that exist."""
        rows = self._conn.execute(
            select(_nodes.c.idx, _nodes.c.hash).where(
                _nodes.c.level == 0, _nodes.c.idx >= first, _nodes.c.idx <= last
            )
        )
        return {int(idx): bytes(h) for idx, h in rows}


def compact_range(conn: Connection, size: int) -> CompactRange:
    subtree = StoredSubtrees(conn)
    return CompactRange(size, [subtree(level, index) for level, index in CompactRange.subtrees_of(size)])


def extend_tree(conn: Connection, limit: int) -> int:
    """Add up to ``limit`` events after the tree's last leaf, in the caller's transaction (which
    must hold the checkpoint lock); returns the tree's new size. An event that is not the next
    seq, does not decode, or whose chain hash or link does not check is refused with
    :class:`TreeError`: the tree never takes in a row that was tampered with before it."""
    size = tree_size(conn)
    tree = compact_range(conn, size)
    prev = GENESIS_HASH
    if size:
        prev = conn.execute(select(_events.c.hash).where(_events.c.seq == size)).scalar() or ""
    rows = conn.execute(select(_events).where(_events.c.seq > size).order_by(_events.c.seq).limit(limit))
    made: list[dict[str, Any]] = []
    for row in rows:
        seq = int(row.seq)
        if seq != tree.size + 1:
            raise TreeError(
                f"the audit trail has no seq {tree.size + 1} (the next is {seq}): rows were deleted"
            )
        try:
            event = row_event(cast(AuditEventRow, row))
        except (ValueError, TypeError) as exc:
            raise TreeError(f"audit event {seq} no longer decodes ({exc}): it was altered") from None
        if event_hash(event.prev_hash, event.hashed_fields()) != event.hash:
            raise TreeError(f"audit event {seq} does not match its hash: it was altered")
        if event.prev_hash != prev:
            raise TreeError(f"audit event {seq} does not link to event {seq - 1}: the chain was altered")
        prev = event.hash
        made += [{"level": s.level, "idx": s.index, "hash": s.hash} for s in tree.append(event_leaf(event))]
    if made:
        conn.execute(insert(_nodes), made)
    return tree.size
