"""Checkpoint egress: 'egress' tasks on a node's queue, and the request kept on its job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS_BEFORE = "kind IN ('plan', 'copy', 'finalize')"
_KINDS_AFTER = "kind IN ('plan', 'copy', 'finalize', 'egress')"


def _kinds(check: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_tasks_kind"), check)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("params", sa.Text(), nullable=True))
    _kinds(_KINDS_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM tasks WHERE kind = 'egress'")
    _kinds(_KINDS_BEFORE)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("params")
