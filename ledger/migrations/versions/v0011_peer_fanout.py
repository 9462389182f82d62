"""Peer fan-out: where each node's worker serves its verified batches to other nodes, and
where each copy batch read its bytes.

``nodes.peer_url``: the address of the node worker's peer server (None: it serves no peers).
``tasks.origin``: for a finished copy batch, ``source`` or the name of the peer node it was
copied from, for the staging's audit story and for usage (source bytes counted once).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("peer_url", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("origin", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("peer_url")
