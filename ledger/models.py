"""The ledger's tables. Rows stay inside the package; callers get dataclasses.

The Alembic migrations create the schema; these models must describe the same tables
(a test compares them).
"""

from datetime import UTC, datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, MetaData, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite stores no zone, so values are normalised to UTC
    before storing and marked UTC when read; PostgreSQL keeps ``timestamptz``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Object keys sort by code point, as Python (and the manifest digest) sorts them. SQLite's
# default BINARY collation already does; PostgreSQL's database collation may not, so keys use "C".
KeyText = Text().with_variant(Text(collation="C"), "postgresql")


# Named constraints, so the migrations can name (and later alter) exactly what the models declare.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {str: Text(), int: BigInteger(), datetime: UTCDateTime()}


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str]
    actor: Mapped[str]
    role: Mapped[str]
    job_ref: Mapped[str | None] = mapped_column(index=True)
    source: Mapped[str]
    destination: Mapped[str]
    manifest_digest: Mapped[str | None]
    files: Mapped[int]
    bytes: Mapped[int]
    policy_version: Mapped[str | None]
    error: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("kind IN ('stage', 'egress')", name="kind"),)


class ManifestEntryRow(Base):
    __tablename__ = "manifest_entries"

    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(KeyText, primary_key=True)
    size: Mapped[int]
    revision: Mapped[str | None]
    version: Mapped[str | None]
    blake3: Mapped[str | None]
    source_checksum: Mapped[str | None]
    verification: Mapped[str | None]
    label: Mapped[str | None]


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    # Assigned by the trail (previous + 1 under a lock), never by the database: sequences and
    # autoincrement leave gaps on rollback, and a gap must mean a deleted row.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str]
    role: Mapped[str]
    action: Mapped[str]
    job_id: Mapped[str | None] = mapped_column(String(36))
    job_ref: Mapped[str | None]
    source: Mapped[str]
    destination: Mapped[str]
    bytes: Mapped[int]
    files: Mapped[int]
    manifest_digest: Mapped[str | None]
    policy_version: Mapped[str | None]
    decision: Mapped[str | None] = mapped_column(String(8))
    reasons: Mapped[str]  # JSON list, canonical form
    details: Mapped[str]  # JSON object, canonical form
    # Unique: two events naming the same predecessor would be a fork, whatever the lock did.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("decision IS NULL OR decision IN ('allow', 'deny')", name="decision"),
        Index(None, "actor"),
        Index(None, "action"),
        Index(None, "job_id"),
        Index(None, "job_ref"),
        Index(None, "time"),
    )
