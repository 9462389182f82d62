"""Pins that end with their pod: the Kubernetes Pod or Job that owns a service staging.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pin_owners",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("next_check_at", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_pin_owners_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_pin_owners")),
    )
    op.create_index(op.f("ix_pin_owners_next_check_at"), "pin_owners", ["next_check_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pin_owners_next_check_at"), table_name="pin_owners")
    op.drop_table("pin_owners")
