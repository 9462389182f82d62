"""One plan for many identical requests, and cached datasets whose source labels rose.

``plan_shares``: the plan of one source (and policy version, mode, batch sizes), led by one
staging, shared by the requests that arrive while it runs or while it is fresh; the lease lets
another worker take over a plan whose planner died. ``plan_waiters``: the stagings waiting for
it, woken when it is done. ``jobs.plan_job``: the staging whose manifest a follower uses (no
per-object rows are copied). ``dataset_label_checks``: when the background re-scan last read a
cached dataset's labels, and whether it found them risen (quarantined).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_shares",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=False),
        sa.Column("planned_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_plan_shares")),
    )
    op.create_index(op.f("ix_plan_shares_job_id"), "plan_shares", ["job_id"])
    op.create_table(
        "plan_waiters",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("key", "job_id", name=op.f("pk_plan_waiters")),
    )
    op.create_table(
        "dataset_label_checks",
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("node", "digest", name=op.f("pk_dataset_label_checks")),
    )
    op.add_column("jobs", sa.Column("plan_job", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("plan_job")
    op.drop_table("dataset_label_checks")
    op.drop_table("plan_waiters")
    op.drop_index(op.f("ix_plan_shares_job_id"), table_name="plan_shares")
    op.drop_table("plan_shares")
