"""The tamper-evident audit trail: append, verify, query, export.

Every event carries the hash of the one before it (see ``ledger.chain``), so editing,
deleting or reordering rows shows up when the chain is walked. Appends are serialised
(an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite) so concurrent writers, in
threads or processes, always extend the current head and never fork the chain.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO, TypedDict, Unpack, cast

from sqlalchemy import Connection, Select, Table, insert, or_, select
from sqlalchemy.orm import Session

from stagegate.errors import InvalidInputError
from stagegate.ledger.chain import GENESIS_HASH, canonical_json, event_hash
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import AuditEvent, ChainVerdict, NewEvent, StoredEvent
from stagegate.ledger.export import ExportFormat, write_events
from stagegate.ledger.locks import AUDIT_APPEND_LOCK, lock_writers
from stagegate.ledger.models import AuditEventRow
from stagegate.ledger.redact import redact_details, redact_text, redact_url
from stagegate.ledger.transaction_local import keep_for_this_transaction, of_this_transaction
from stagegate.ledger.verify import ChainChecker

PAGE_SIZE = 1000


class EventFilter(TypedDict, total=False):
    """What :meth:`AuditTrail.events` selects by; :meth:`query` and :meth:`export` take the same."""

    actor: str | None
    action: str | None
    job: str | None
    since: datetime | None
    until: datetime | None
    limit: int | None


_events = cast(Table, AuditEventRow.__table__)


def row_event(row: AuditEventRow) -> AuditEvent:
    """The event a stored row holds; ValueError or TypeError if it no longer decodes."""
    return _to_event(row)


def _to_event(row: AuditEventRow) -> AuditEvent:
    reasons = json.loads(row.reasons)
    details = json.loads(row.details)
    if not isinstance(reasons, list) or not isinstance(details, dict):
        raise ValueError("reasons must be a JSON list and details a JSON object")
    return AuditEvent(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        role=row.role,
        action=row.action,
        job_id=row.job_id,
        job_ref=row.job_ref,
        source=row.source,
        destination=row.destination,
        bytes=row.bytes,
        files=row.files,
        manifest_digest=row.manifest_digest,
        policy_version=row.policy_version,
        decision=row.decision,
        reasons=tuple(str(r) for r in reasons),
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _row_values(event: AuditEvent, reasons_json: str, details_json: str) -> dict[str, object]:
    return {
        "seq": event.seq,
        "time": event.time,
        "actor": event.actor,
        "role": event.role,
        "action": event.action,
        "job_id": event.job_id,
        "job_ref": event.job_ref,
        "source": event.source,
        "destination": event.destination,
        "bytes": event.bytes,
        "files": event.files,
        "manifest_digest": event.manifest_digest,
        "policy_version": event.policy_version,
        "decision": event.decision,
        "reasons": reasons_json,
        "details": details_json,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


# conn.info key: the chain head this connection's transaction appended last, with that transaction.
_HEAD_KEY = "stagegate.audit_head"
_NOT_HELD = (-1, "")


def _held_head(conn: Connection) -> tuple[int, str] | None:
    """The head this transaction appended, if it appended one: it then holds the append lock
    until it ends, so no other writer can have moved the head since; else ``_NOT_HELD``."""
    head = of_this_transaction(conn, _HEAD_KEY)
    return _NOT_HELD if head is None else cast(tuple[int, str] | None, head)


def _hold_head(conn: Connection, head: tuple[int, str]) -> None:
    keep_for_this_transaction(conn, _HEAD_KEY, head)


# A NewEvent with its reasons and details as stored (redacted canonical JSON).
_Prepared = tuple[NewEvent, str, str]
# conn.info key: the events an appending_last block queued, with that block's transaction.
_QUEUE_KEY = "stagegate.audit_queue"


def _prepare(new: NewEvent) -> _Prepared:
    try:
        # Round-tripped through JSON so the returned event equals what a later read sees.
        reasons_json = canonical_json([redact_text(str(r)) for r in new.reasons])
        details_json = canonical_json(redact_details(new.details))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"event details must be plain JSON: {exc}") from exc
    return new, reasons_json, details_json


def _queue_of(conn: Connection) -> list[_Prepared] | None:
    """The queue of the appending_last block open in this transaction, if one is."""
    return cast(list[_Prepared] | None, of_this_transaction(conn, _QUEUE_KEY))


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInputError(f"{name} must be timezone-aware")
    return moment


class AuditTrail:
    """The audit trail of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def append(self, new: NewEvent) -> AuditEvent:
        """Record ``new`` as the next event and return it as stored."""
        with self._ledger.engine.begin() as conn:
            return self._append_prepared(conn, [_prepare(new)])[0]

    @staticmethod
    def append_in(conn: Connection, new: NewEvent) -> AuditEvent | None:
        """Record ``new`` inside the caller's transaction on ``conn``: a state change and the
        event that tells of it commit together or not at all (a crash between them can
        neither lose the event nor record it twice). Inside :meth:`appending_last` the event
        is queued (None is returned) and appended at that block's end, still in the transaction."""
        prepared = _prepare(new)  # bad details fail here, at the caller, deferred or not
        queued = _queue_of(conn)
        if queued is not None:
            queued.append(prepared)
            return None
        return AuditTrail._append_prepared(conn, [prepared])[0]

    @staticmethod
    @contextmanager
    def appending_last(conn: Connection) -> Iterator[None]:
        """Within the block, :meth:`append_in` on ``conn`` queues its events; at the block's end,
        still inside the caller's transaction, they are appended together: the append lock
        taken, the head read and one INSERT sent. Every writer of the chain waits for that lock
        until the holder commits, so a transaction that appends as it goes (a batch of fifty
        admissions, each with its event) would make them all wait through its whole batch;
        appending last, they wait only for its INSERT and commit. What the events say is fixed
        when they are queued. An exception in the block appends nothing (the transaction is
        rolled back by its owner). Nested blocks append at the outermost one's end."""
        if _queue_of(conn) is not None:
            yield
            return
        queued: list[_Prepared] = []
        keep_for_this_transaction(conn, _QUEUE_KEY, queued)
        try:
            yield
        finally:
            conn.info.pop(_QUEUE_KEY, None)
        if queued:
            AuditTrail._append_prepared(conn, queued)

    @staticmethod
    def _append_prepared(conn: Connection, prepared: Sequence["_Prepared"]) -> list[AuditEvent]:
        # Core, not the ORM: appends are serialised, so every microsecond spent holding the
        # lock is paid by every waiting writer.
        head = _held_head(conn)
        if head is _NOT_HELD:
            lock_writers(conn, AUDIT_APPEND_LOCK)
            head = AuditTrail._head(conn)
        seq, prev_hash = (0, GENESIS_HASH) if head is None else head
        # The time is taken under the lock, so times never go backwards along the chain
        # (unless the clock does).
        now = datetime.now(UTC)
        events, rows = [], []
        for new, reasons_json, details_json in prepared:
            seq += 1
            event = AuditEvent(
                seq=seq,
                time=now,
                actor=new.actor,
                role=new.role,
                action=new.action,
                job_id=new.job_id,
                job_ref=new.job_ref,
                source=redact_url(new.source),
                destination=redact_url(new.destination),
                bytes=new.bytes,
                files=new.files,
                manifest_digest=new.manifest_digest,
                policy_version=new.policy_version,
                decision=new.decision,
                reasons=tuple(json.loads(reasons_json)),
                details=json.loads(details_json),
                prev_hash=prev_hash,
                hash="",
            )
            event = replace(event, hash=event_hash(prev_hash, event.hashed_fields()))
            prev_hash = event.hash
            events.append(event)
            rows.append(_row_values(event, reasons_json, details_json))
        conn.execute(insert(_events), rows)
        _hold_head(conn, (events[-1].seq, events[-1].hash))
        return events

    @staticmethod
    def _head(conn: Connection | Session) -> tuple[int, str] | None:
        row = conn.execute(
            select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq.desc()).limit(1)
        ).first()
        return None if row is None else (row.seq, row.hash)

    def head(self) -> tuple[int, str] | None:
        """The last event's (seq, hash): export it somewhere safe to anchor later verifications."""
        with self._ledger.read_session() as session, session.begin():
            return self._head(session)

    def _pages(
        self, statement: Select[AuditEventRow], page_size: int, after: int = 0
    ) -> Iterator[AuditEventRow]:
        # Keyset pages on seq, each read in its own short transaction: a walk over millions of
        # rows holds one page in memory and never blocks (or is blocked by) appends for long.
        last = after
        while True:
            with self._ledger.read_session() as session, session.begin():
                page = list(
                    session.scalars(
                        statement.where(AuditEventRow.seq > last).order_by(AuditEventRow.seq).limit(page_size)
                    )
                )
                session.expunge_all()
            yield from page
            if len(page) < page_size:
                return
            last = page[-1].seq

    def stored(self, after: int = 0, page_size: int = PAGE_SIZE) -> Iterator[StoredEvent]:
        """Every stored event after seq ``after``, in seq order, streamed, a row that no longer
        decodes included (with why): for walks that must count and place every row."""
        for row in self._pages(select(AuditEventRow), page_size, after):
            try:
                event = _to_event(row)
            except (ValueError, TypeError) as exc:
                yield StoredEvent(row.seq, None, str(exc))
            else:
                yield StoredEvent(row.seq, event)

    def verify(
        self, expected_head: tuple[int, str] | None = None, page_size: int = PAGE_SIZE
    ) -> ChainVerdict:
        """Walk the whole chain in seq order and name the first problem, if any.

        With ``expected_head`` (a :meth:`head` exported earlier) rows deleted from the end are
        caught too: "missing row" if the chain is now shorter, "head mismatch" if that row differs.
        """
        checker = ChainChecker(expected_head)
        for stored in self.stored(page_size=page_size):
            if stored.event is None:
                return checker.unreadable(stored.seq, str(stored.unreadable))
            verdict = checker.check(stored.event)
            if verdict is not None:
                return verdict
        return checker.finish()

    def events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        job: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[AuditEvent]:
        """Matching events in seq order, streamed. ``job`` matches a job id or a job reference;
        ``since`` is inclusive and ``until`` exclusive."""
        statement = select(AuditEventRow)
        if actor is not None:
            statement = statement.where(AuditEventRow.actor == actor)
        if action is not None:
            statement = statement.where(AuditEventRow.action == action)
        if job is not None:
            statement = statement.where(or_(AuditEventRow.job_id == job, AuditEventRow.job_ref == job))
        if (start := _aware(since, "since")) is not None:
            statement = statement.where(AuditEventRow.time >= start)
        if (end := _aware(until, "until")) is not None:
            statement = statement.where(AuditEventRow.time < end)
        if limit is not None and limit < 0:
            raise InvalidInputError("limit cannot be negative")
        remaining = limit
        if remaining == 0:
            return
        for row in self._pages(statement, page_size if remaining is None else min(page_size, remaining)):
            yield _to_event(row)
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return

    def query(self, **where: Unpack[EventFilter]) -> list[AuditEvent]:
        """Like :meth:`events`, as a list."""
        return list(self.events(**where))

    def export(self, fmt: ExportFormat, out: TextIO, **where: Unpack[EventFilter]) -> int:
        """Write the events matching ``where`` to ``out`` as "jsonl" or "csv"; returns how many."""
        if fmt not in ("jsonl", "csv"):
            raise InvalidInputError(f"export format must be 'jsonl' or 'csv', not {fmt!r}")
        return write_events(fmt, self.events(**where), out)
