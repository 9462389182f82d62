"""Declassifications: a steward's (or admin's) recorded decision to lower a checkpoint's
label, and the role ``steward`` that may make one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES_BEFORE = "role IN ('job', 'scientist', 'auditor', 'admin')"
_ROLES_AFTER = "role IN ('job', 'scientist', 'steward', 'auditor', 'admin')"


def _roles(check: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("tokens") as batch:
        batch.drop_constraint(op.f("ck_tokens_role"), type_="check")
        batch.create_check_constraint(op.f("ck_tokens_role"), check)


def upgrade() -> None:
    op.create_table(
        "declassifications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("node", sa.Text(), nullable=True),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declassifications")),
    )
    op.create_index("ix_declassifications_run_dir_checkpoint", "declassifications", ["run_dir", "checkpoint"])
    _roles(_ROLES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM tokens WHERE role = 'steward'")
    _roles(_ROLES_BEFORE)
    op.drop_index("ix_declassifications_run_dir_checkpoint", table_name="declassifications")
    op.drop_table("declassifications")
