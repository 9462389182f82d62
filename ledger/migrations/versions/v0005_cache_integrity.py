"""A cache that cannot be poisoned: each cached dataset's fingerprint and last scrub, 'verify'
tasks that check a cache hit on its node, and the quarantined copies awaiting deletion.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS_BEFORE = "kind IN ('plan', 'copy', 'finalize', 'egress')"
_KINDS_AFTER = "kind IN ('plan', 'copy', 'finalize', 'egress', 'verify')"


def _kinds(check: str) -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_tasks_kind"), check)


def upgrade() -> None:
    op.add_column("node_datasets", sa.Column("fingerprint", sa.String(64), nullable=True))
    op.add_column("node_datasets", sa.Column("scrubbed_at", UTCDateTime(), nullable=True))
    _kinds(_KINDS_AFTER)
    op.create_table(
        "quarantined_datasets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("holders", sa.Text(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_datasets")),
    )
    op.create_index(op.f("ix_quarantined_datasets_node"), "quarantined_datasets", ["node"])


def downgrade() -> None:
    op.drop_index(op.f("ix_quarantined_datasets_node"), table_name="quarantined_datasets")
    op.drop_table("quarantined_datasets")
    op.execute("DELETE FROM tasks WHERE kind = 'verify'")
    _kinds(_KINDS_BEFORE)
    with op.batch_alter_table("node_datasets") as batch:
        batch.drop_column("scrubbed_at")
        batch.drop_column("fingerprint")
