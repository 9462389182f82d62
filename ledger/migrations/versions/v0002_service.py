"""The service: tokens, the service's job columns, tasks with leases, nodes and their caches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stagegate.ledger.models import KeyText, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOB_COLUMNS: tuple[sa.Column[object], ...] = (
    sa.Column("project", sa.Text(), nullable=True),
    sa.Column("mode", sa.String(16), nullable=True),
    sa.Column("nodes", sa.Text(), nullable=True),
    sa.Column("idempotency_key", sa.Text(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
)


def upgrade() -> None:
    for column in _JOB_COLUMNS:
        op.add_column("jobs", column)
    op.create_index("ix_jobs_actor_idempotency_key", "jobs", ["actor", "idempotency_key"], unique=True)
    op.add_column("manifest_entries", sa.Column("mtime", sa.Float(), nullable=True))
    op.add_column("manifest_entries", sa.Column("checksum_algorithm", sa.Text(), nullable=True))
    op.add_column("manifest_entries", sa.Column("own_label", sa.Text(), nullable=True))

    op.create_table(
        "label_files",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("directory", KeyText, nullable=False),
        sa.Column("key", KeyText, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("mtime", sa.Float(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_label_files_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "directory", name=op.f("pk_label_files")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("project", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("role IN ('job', 'scientist', 'auditor', 'admin')", name=op.f("ck_tokens_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    op.create_table(
        "tasks",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("key_from", KeyText, nullable=True),
        sa.Column("key_to", KeyText, nullable=True),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("files_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('plan', 'copy', 'finalize')", name=op.f("ck_tasks_kind")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_tasks_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "kind", "node", "idx", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_state_lease_until", "tasks", ["state", "lease_until"])
    op.create_table(
        "nodes",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("capacity", sa.BigInteger(), nullable=False),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "node_datasets",
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("writer_job", sa.String(36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["node"], ["nodes.name"], name=op.f("fk_node_datasets_node_nodes")),
        sa.PrimaryKeyConstraint("node", "digest", name=op.f("pk_node_datasets")),
    )
    op.create_table(
        "pins",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_pins_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "node", name=op.f("pk_pins")),
    )
    op.create_index("ix_pins_node_digest", "pins", ["node", "digest"])


def downgrade() -> None:
    op.drop_index("ix_pins_node_digest", table_name="pins")
    for table in ("pins", "node_datasets", "nodes"):
        op.drop_table(table)
    op.drop_index("ix_tasks_state_lease_until", table_name="tasks")
    for table in ("tasks", "tokens", "label_files"):
        op.drop_table(table)
    with op.batch_alter_table("manifest_entries") as batch:
        batch.drop_column("own_label")
        batch.drop_column("checksum_algorithm")
        batch.drop_column("mtime")
    op.drop_index("ix_jobs_actor_idempotency_key", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(_JOB_COLUMNS):
            batch.drop_column(column.name)
