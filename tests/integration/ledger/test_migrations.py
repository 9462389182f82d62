"""Opening a ledger migrates it; the migrations and the models describe the same schema."""

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from stagegate.ledger import AuditTrail, NewEvent, open_ledger
from stagegate.ledger.migrate import HEAD_REVISION, alembic_config
from stagegate.ledger.models import Base


def test_open_ledger_migrates_to_head_and_is_idempotent(ledger_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    for _ in range(2):
        with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            assert {"jobs", "manifest_entries", "audit_events"} <= set(sa.inspect(conn).get_table_names())


def test_the_fast_head_check_knows_the_newest_revision() -> None:
    # open_ledger skips Alembic when the database is at HEAD_REVISION: it must be the real head.
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_models_match_the_migrated_schema(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_default_url_is_sqlite_in_stagegate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGEGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("STAGEGATE_HOME", str(tmp_path / "home"))
    with open_ledger() as ledger:
        AuditTrail(ledger).append(NewEvent(actor="a", role="r", action="x"))
        assert ledger.dialect == "sqlite"
    assert (tmp_path / "home" / "ledger.db").is_file()


def test_database_url_from_the_environment(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", ledger_url)
    monkeypatch.setenv("STAGEGATE_HOME", str(tmp_path / "unused"))
    with open_ledger() as ledger:
        assert ledger.dialect == sa.make_url(ledger_url).get_backend_name()
    assert not (tmp_path / "unused").exists()


def test_sqlite_ledger_uses_wal(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
