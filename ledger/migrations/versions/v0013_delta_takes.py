"""Delta staging's admission and accounting.

``node_datasets.takes_from``: for a dataset being written, the ready datasets on the node it was
admitted counting on taking files from (a JSON list of digests); admission holds them as if
pinned until it is ready, so they are never evicted before the take. ``tasks.taken_bytes``: the
bytes a copy batch took from the node's cache (a link, a reflink or a local copy alike), which
usage counts as from the cache however the take was made.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("node_datasets", sa.Column("takes_from", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("taken_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("taken_bytes")
    with op.batch_alter_table("node_datasets") as batch:
        batch.drop_column("takes_from")
