"""Whether a signed checkpoint of the audit trail is owed: the rule alone, without the signer.

Every embedded command asks as it ends (``client.context``), and the answer is nearly always
no: asked here, the signer's side (the note format, cryptography, the publisher) is imported
only when a checkpoint is to be signed.
"""

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, func, select

from stagegate.ledger.database import READ_ONLY, Ledger
from stagegate.ledger.models import AuditCheckpointRow, AuditEventRow
from stagegate.settings import Settings

_checkpoints = cast(Table, AuditCheckpointRow.__table__)
_events = cast(Table, AuditEventRow.__table__)


def checkpoint_due(conn: Connection, every_events: int, every_seconds: float, now: datetime) -> bool:
    """``every_events`` new events since the last checkpoint, or ``every_seconds`` since it (since
    the first unsigned event, if none yet); 0 turns a rule off."""
    head = conn.execute(select(func.max(_events.c.seq))).scalar() or 0
    last = conn.execute(
        select(_checkpoints.c.size, _checkpoints.c.time).order_by(_checkpoints.c.size.desc()).limit(1)
    ).first()
    signed = 0 if last is None else int(last.size)
    if head <= signed:
        return False
    if every_events and head - signed >= every_events:
        return True
    if not every_seconds:
        return False
    since = (
        last.time
        if last is not None
        else conn.execute(select(_events.c.time).where(_events.c.seq == signed + 1)).scalar()
    )
    return since is not None and now - since >= timedelta(seconds=every_seconds)


def due_by_settings(ledger: Ledger, settings: Settings) -> bool:
    """:func:`checkpoint_due` by the ``STAGEGATE_CHECKPOINT_*`` rules, now, read without the write lock."""
    with ledger.engine.execution_options(**{READ_ONLY: True}).connect() as conn:
        now = datetime.now(UTC)
        return checkpoint_due(conn, settings.checkpoint_events, settings.checkpoint_seconds, now)
