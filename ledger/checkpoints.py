"""Signed checkpoints of the audit trail: signing, storing, publishing, and proofs against them.

A checkpoint signs (origin, size, Merkle root of the first ``size`` events, time) with the
service's Ed25519 key (``ledger.checkpoint_note``). Signing extends the stored tree
(``ledger.audit_tree``) to the newest event in batches, each its own short transaction, then
signs what it holds, but only after checking, by a consistency proof over the stored tree, that
the new root extends the last checkpoint's: the service never signs a history that is not an
append-only extension of what it signed before. Each checkpoint is then also published where
the database cannot reach (``ledger.checkpoint_publish``).

Who signs when: :meth:`Checkpoints.sign_if_due` every ``STAGEGATE_CHECKPOINT_EVENTS`` events or
``STAGEGATE_CHECKPOINT_SECONDS`` after the last checkpoint (either 0: that rule off), called by
every node worker's background loop and, in embedded mode, when a command that opened the
ledger ends; :meth:`Checkpoints.sign` on demand (``stagegate audit checkpoint --new``).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Table, func, insert, select

from stagegate.errors import InvalidInputError, NotFoundError, StagegateError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.audit_tree import StoredSubtrees, compact_range, extend_tree, tree_size
from stagegate.ledger.checkpoint_due import checkpoint_due
from stagegate.ledger.checkpoint_note import Checkpoint, SignedCheckpoint, open_checkpoint
from stagegate.ledger.checkpoint_publish import Publisher, publisher_from
from stagegate.ledger.database import READ_ONLY, Ledger
from stagegate.ledger.locks import CHECKPOINT_LOCK, lock_writers
from stagegate.ledger.merkle import consistency_ranges, inclusion_ranges, range_hash, verify_consistency
from stagegate.ledger.models import AuditCheckpointRow, AuditEventRow
from stagegate.ledger.proof_bundle import InclusionBundle
from stagegate.ledger.signed_note import NoteError, SignerKey, VerifierKey, parse_verifier, sign
from stagegate.ledger.signing_key import NoSigningKeyError, load_signer
from stagegate.settings import Settings, load_settings

log = logging.getLogger(__name__)

_checkpoints = cast(Table, AuditCheckpointRow.__table__)
_events = cast(Table, AuditEventRow.__table__)
# Events added to the tree per transaction: each holds the checkpoint lock (and on SQLite the
# write lock) for a fraction of a second, so appends wait briefly, never for a whole backlog.
TREE_BATCH = 20_000


class CheckpointError(StagegateError):
    """A checkpoint cannot be signed: what is stored no longer extends what was signed."""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    time: datetime
    origin: str
    key_name: str
    key_id: int
    public_key: str  # the verifier key, ``NAME+ID+BASE64``
    note: str

    def verifier(self) -> VerifierKey:
        return parse_verifier(self.public_key)

    def opened(self, keys: list[VerifierKey] | None = None) -> SignedCheckpoint:
        """This checkpoint, its signature checked by ``keys`` (default: its own public key)."""
        return open_checkpoint(self.note, keys if keys is not None else [self.verifier()], self.origin)


def _stored(row: AuditCheckpointRow) -> StoredCheckpoint:
    return StoredCheckpoint(
        size=row.size,
        root=bytes.fromhex(row.root),
        time=row.time,
        origin=row.origin,
        key_name=row.key_name,
        key_id=int(row.key_id, 16),
        public_key=row.public_key,
        note=row.note,
    )


def _latest_in(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(select(_checkpoints).order_by(_checkpoints.c.size.desc()).limit(1)).first()
    return None if row is None else _stored(cast(AuditCheckpointRow, row))


class Checkpoints:
    """The signed checkpoints of one ledger. ``signer`` is called only when a checkpoint is
    signed, so reading checkpoints and proving needs no key."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        origin: str,
        signer: Callable[[], SignerKey] | None = None,
        publisher: Publisher | None = None,
        every_events: int = 0,
        every_seconds: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self.origin = origin
        self._signer = signer
        self.publisher = publisher
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._clock = clock
        self._warned = False

    @classmethod
    def from_settings(cls, ledger: Ledger, settings: Settings | None = None) -> "Checkpoints":
        """As configured by the ``STAGEGATE_CHECKPOINT_*`` settings; embedded mode (SQLite)
        makes a key under ``$STAGEGATE_HOME`` on first use."""
        env = settings or load_settings()
        embedded = ledger.dialect == "sqlite"
        return cls(
            ledger,
            origin=env.checkpoint_origin,
            signer=lambda: load_signer(env, embedded),
            publisher=publisher_from(env),
            every_events=env.checkpoint_events,
            every_seconds=env.checkpoint_seconds,
        )

    # -- reading ---------------------------------------------------------------------------

    def _reader(self) -> Connection:
        # Read-only: on SQLite it takes no write lock, so reads never hold up an append.
        return self._ledger.engine.execution_options(**{READ_ONLY: True}).connect()

    def latest(self) -> StoredCheckpoint | None:
        with self._reader() as conn:
            return _latest_in(conn)

    def at(self, size: int) -> StoredCheckpoint:
        with self._reader() as conn:
            row = conn.execute(select(_checkpoints).where(_checkpoints.c.size == size)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint of {size} events was signed")
        return _stored(cast(AuditCheckpointRow, row))

    def public_keys(self) -> list[VerifierKey]:
        """Every public key that signed a checkpoint here, oldest first."""
        with self._reader() as conn:
            rows = conn.execute(
                select(_checkpoints.c.public_key, func.min(_checkpoints.c.size))
                .group_by(_checkpoints.c.public_key)
                .order_by(func.min(_checkpoints.c.size))
            ).all()
        return [parse_verifier(key) for key, _ in rows]

    def signer_public_key(self) -> VerifierKey:
        """The public key of the key that signs now (made on first use in embedded mode)."""
        if self._signer is None:
            raise NoSigningKeyError("this process signs no checkpoints")
        return self._signer().verifier()

    # -- signing ---------------------------------------------------------------------------

    def _extend(self) -> int:
        while True:
            with self._ledger.engine.begin() as conn:
                lock_writers(conn, CHECKPOINT_LOCK)
                before = tree_size(conn)
                after = extend_tree(conn, TREE_BATCH)
            if after - before < TREE_BATCH:
                return after

    def sign(self) -> StoredCheckpoint:
        """Sign the trail as it stands now and publish the checkpoint; with nothing new since
        the last checkpoint, that one (published again if it is not yet)."""
        if self._signer is None:
            raise NoSigningKeyError("this process signs no checkpoints")
        key = self._signer()
        self._extend()
        with self._ledger.engine.begin() as conn:
            lock_writers(conn, CHECKPOINT_LOCK)
            size = tree_size(conn)
            last = _latest_in(conn)
            made = last if last is not None and last.size >= size else self._sign_in(conn, key, size, last)
        if self.publisher is not None:
            if last is not None and last.size != made.size:
                # The one before may have failed to publish (S3 away): each signing retries it.
                self.publisher.ensure(last.size, last.note)
            self.publisher.ensure(made.size, made.note)
        return made

    def _sign_in(
        self, conn: Connection, key: SignerKey, size: int, last: StoredCheckpoint | None
    ) -> StoredCheckpoint:
        root = compact_range(conn, size).root()
        if last is not None:
            try:
                last.opened()
            except NoteError as exc:
                raise CheckpointError(
                    f"the stored checkpoint of {last.size} events is not signed: {exc}"
                ) from None
            subtree = StoredSubtrees(conn)
            proof = [range_hash(s, e, subtree) for s, e in consistency_ranges(last.size, size)]
            if not verify_consistency(last.size, size, last.root, root, proof):
                raise CheckpointError(
                    f"the stored tree of {size} events does not extend the checkpoint of {last.size}: "
                    "the audit tables were altered; not signing (run `stagegate audit verify --checkpoint`)"
                )
        checkpoint = Checkpoint(self.origin, size, root, self._clock())
        note = sign(checkpoint.text(), key)
        made = StoredCheckpoint(
            size=size,
            root=root,
            time=checkpoint.time,
            origin=self.origin,
            key_name=key.name,
            key_id=key.id,
            public_key=key.verifier().encode(),
            note=note,
        )
        conn.execute(
            insert(_checkpoints).values(
                size=size,
                root=root.hex(),
                time=made.time,
                origin=made.origin,
                key_name=made.key_name,
                key_id=f"{made.key_id:08x}",
                public_key=made.public_key,
                note=note,
            )
        )
        log.info("signed audit checkpoint %d (%s) with key %s+%08x", size, root.hex(), key.name, key.id)
        return made

    def due(self) -> bool:
        """Whether the rules say a checkpoint is owed: ``every_events`` new events since the
        last one, or ``every_seconds`` since it (since the first unsigned event, if none yet)."""
        with self._reader() as conn:
            return checkpoint_due(conn, self._every_events, self._every_seconds, self._clock())

    def sign_if_due(self) -> StoredCheckpoint | None:
        """:meth:`sign` if :meth:`due`. With no key configured (a service), says so once in the
        log and signs nothing."""
        if self._signer is None or not self.due():
            return None
        try:
            return self.sign()
        except NoSigningKeyError as exc:
            if not self._warned:
                log.warning("audit checkpoints are not being signed: %s", exc)
                self._warned = True
            return None

    # -- proofs ----------------------------------------------------------------------------

    def inclusion(self, seq: int, checkpoint: StoredCheckpoint | None = None) -> InclusionBundle:
        """Event ``seq`` with its inclusion proof in ``checkpoint`` (default: the latest)."""
        chosen = checkpoint or self.latest()
        if chosen is None:
            raise NotFoundError("no checkpoint has been signed yet: run `stagegate audit checkpoint --new`")
        if not 1 <= seq <= chosen.size:
            raise InvalidInputError(
                f"event {seq} is not in the latest checkpoint, which covers events 1 to {chosen.size}"
                + ("; sign a newer one with `stagegate audit checkpoint --new`" if seq > chosen.size else "")
            )
        stored = next(AuditTrail(self._ledger).stored(after=seq - 1, page_size=1), None)
        if stored is None or stored.seq != seq:
            raise NotFoundError(f"audit event {seq} is not in the trail")
        if stored.event is None:
            raise ValueError(f"audit event {seq} no longer decodes: {stored.unreadable}")
        event = stored.event
        with self._reader() as conn:
            subtree = StoredSubtrees(conn)
            proof = tuple(range_hash(s, e, subtree) for s, e in inclusion_ranges(seq - 1, chosen.size))
        return InclusionBundle(event.to_json(), chosen.size, proof, chosen.note)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof from the stored tree of ``old`` events to that of ``new``."""
        with self._reader() as conn:
            if new > tree_size(conn):
                raise InvalidInputError(f"the tree holds fewer than {new} events")
            subtree = StoredSubtrees(conn)
            return [range_hash(s, e, subtree) for s, e in consistency_ranges(old, new)]
