"""When a shared plan was last used, so the workers keep only the plans in use verified.

``plan_shares.used_at``: the last time a request led or followed the plan. The node workers
re-list the sources of plans used within ``STAGEGATE_PLAN_KEEP_WARM_SECONDS`` in the
background (``workers.plan_recheck``), so a cache hit follows a plan verified moments ago
instead of listing; a plan nobody asked for lately is left to go stale.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("plan_shares", sa.Column("used_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_shares") as batch:
        batch.drop_column("used_at")
