"""Pins that end: each service staging's lease (TTL, expiry, renewals), and when each API
token was last used.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pin_leases",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("ttl_seconds", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("renewed_at", UTCDateTime(), nullable=True),
        sa.Column("renewals", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_pin_leases_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_pin_leases")),
    )
    op.create_index(op.f("ix_pin_leases_expires_at"), "pin_leases", ["expires_at"])
    op.add_column("tokens", sa.Column("last_used_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("last_used_at")
    op.drop_index(op.f("ix_pin_leases_expires_at"), table_name="pin_leases")
    op.drop_table("pin_leases")
