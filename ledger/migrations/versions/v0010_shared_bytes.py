"""Delta staging: cached datasets on a node may share files (hard links of sealed files), so a
node's used space is not the sum of its datasets' sizes. ``node_datasets.unique_bytes``: the
bytes of the dataset that no older dataset on the node holds (its share of the disk: the node's
used space is their sum); ``sole_bytes``: the bytes no other dataset holds (what evicting it
alone frees). Both NULL where the dataset shares nothing (its ``bytes`` then stands for both).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("node_datasets", sa.Column("unique_bytes", sa.BigInteger(), nullable=True))
    op.add_column("node_datasets", sa.Column("sole_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_datasets") as batch:
        batch.drop_column("sole_bytes")
        batch.drop_column("unique_bytes")
