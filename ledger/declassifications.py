"""Declassifications: lowering a checkpoint's label is a separate act, recorded and audited.

A checkpoint's label only rises (its own, its directories', its lineage); a steward (or an
admin) who decides that one may go out at a lower level records that here, with a reason.
The next egress of that checkpoint uses the recorded label and cites the record, but only
while the checkpoint is unchanged since: a record made at time T is ignored once any file or
directory of the checkpoint has a ctime after T (see ``workers/egress_labels.py``).
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from stagegate.actions import AuditAction
from stagegate.errors import InvalidInputError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.events import NewEvent
from stagegate.ledger.models import DeclassificationRow
from stagegate.ledger.nodes import require_known
from stagegate.paths import plain_path
from stagegate.policies import is_label_word, normalize_label

MAX_REASON = 2000
DECLASSIFIED = AuditAction.LABEL_DECLASSIFIED


@dataclass(frozen=True, slots=True)
class Declassification:
    id: str
    node: str | None
    run_dir: str
    checkpoint: str
    label: str
    reason: str
    actor: str
    role: str
    created_at: datetime

    @property
    def source(self) -> str:
        where = f"{self.run_dir}/{self.checkpoint}"
        return f"node:{self.node}:{where}" if self.node else where

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "node": self.node,
            "run_dir": self.run_dir,
            "checkpoint": self.checkpoint,
            "label": self.label,
            "reason": self.reason,
            "actor": self.actor,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


def _view(row: DeclassificationRow) -> Declassification:
    return Declassification(
        id=row.id,
        node=row.node,
        run_dir=row.run_dir,
        checkpoint=row.checkpoint,
        label=row.label,
        reason=row.reason,
        actor=row.actor,
        role=row.role,
        created_at=row.created_at,
    )


def _check_checkpoint(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name or len(name) > 255:
        raise InvalidInputError(f"checkpoint {name!r} must be the name of one entry of the run directory")


def _check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidInputError("a declassification needs a reason: say why this may go out at a lower level")
    if len(text) > MAX_REASON or not all(c.isprintable() or c == " " for c in text):
        raise InvalidInputError(f"the reason must be at most {MAX_REASON} printable characters")
    return text


class Declassifications:
    """The declassifications recorded in one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def record(
        self,
        *,
        actor: str,
        role: str,
        node: str | None,
        run_dir: str,
        checkpoint: str,
        label: str,
        reason: str,
    ) -> Declassification:
        """Record the declassification and its ``label.declassified`` event in one transaction."""
        run_dir = plain_path(run_dir, "the run directory")
        _check_checkpoint(checkpoint)
        word = normalize_label(label)
        if not is_label_word(word):
            raise InvalidInputError(f"{label!r} is not a label word such as 'public'")
        text = _check_reason(reason)
        row = DeclassificationRow(
            id=str(uuid.uuid4()),
            node=node,
            run_dir=run_dir,
            checkpoint=checkpoint,
            label=word,
            reason=text,
            actor=actor,
            role=role,
            created_at=datetime.now(UTC),
        )
        with self._ledger.sessions.begin() as session:
            if node is not None:
                require_known(session, [node])
            session.add(row)
            session.flush()
            made = _view(row)
            AuditTrail.append_in(
                session.connection(),
                NewEvent(
                    actor=actor,
                    role=role,
                    action=DECLASSIFIED,
                    source=made.source,
                    reasons=(text,),
                    details={
                        "id": made.id,
                        "node": node,
                        "run_dir": run_dir,
                        "checkpoint": checkpoint,
                        # What it is lowered from is known only where the checkpoint is read: its
                        # egress records the label it would have had ("declassified.from").
                        "from": "the checkpoint's label at its next egress",
                        "to": word,
                        "reason": text,
                    },
                ),
            )
        return made

    def latest(self, node: str | None, run_dir: str, checkpoint: str) -> Declassification | None:
        """The newest declassification of ``checkpoint`` in ``run_dir`` on ``node`` (None: here)."""
        statement = select(DeclassificationRow).where(
            DeclassificationRow.run_dir == plain_path(run_dir, "the run directory"),
            DeclassificationRow.checkpoint == checkpoint,
            DeclassificationRow.node.is_(None) if node is None else DeclassificationRow.node == node,
        )
        with self._ledger.read_session() as session, session.begin():
            row = session.scalars(
                statement.order_by(DeclassificationRow.created_at.desc(), DeclassificationRow.id).limit(1)
            ).first()
            return None if row is None else _view(row)
