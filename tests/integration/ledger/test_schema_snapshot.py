"""A new SQLite ledger is built from the checked-in snapshot; it must be the database the
migrations build, and older databases must still migrate through Alembic."""

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from stagegate.ledger import open_ledger
from stagegate.ledger.database import create_ledger_engine
from stagegate.ledger.migrate import HEAD_REVISION, alembic_config, upgrade_with_alembic
from stagegate.ledger.schema_snapshot import migrated_snapshot
from stagegate.ledger.sqlite_schema import REGENERATE, SNAPSHOT, row_inserts, schema_objects, statements

STALE = f"ledger/{SNAPSHOT.name} is not what the migrations build: run `{REGENERATE}` and commit it"


def _schema(url: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """sqlite_master's rows (SQL with whitespace collapsed), sorted, and every table's rows."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            objects = sorted((o.type, o.name, o.table, " ".join(o.sql.split())) for o in schema_objects(conn))
            return objects, sorted(row_inserts(conn))
    finally:
        engine.dispose()


def _by_alembic(path: Path, revision: str = "head") -> str:
    url = f"sqlite:///{path}"
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as conn:
            if revision == "head":
                upgrade_with_alembic(conn)
            else:
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
    finally:
        engine.dispose()
    return url


def _by_snapshot(path: Path) -> str:
    url = f"sqlite:///{path}"
    open_ledger(url).close()
    return url


def test_a_new_ledger_from_the_snapshot_is_the_one_the_migrations_build(tmp_path: Path) -> None:
    migrated = _schema(_by_alembic(tmp_path / "migrated.db"))
    snapshot = _schema(_by_snapshot(tmp_path / "snapshot.db"))
    assert snapshot == migrated, STALE
    objects, rows = snapshot
    assert {"table", "index", "trigger"} <= {kind for kind, *_ in objects}
    assert rows == [f'INSERT INTO "alembic_version" ("version_num") VALUES (\'{HEAD_REVISION}\')']


def test_the_snapshot_file_is_what_the_generator_writes() -> None:
    # Stricter than the comparison above: order and header too, so `--write` leaves no diff.
    assert SNAPSHOT.read_text(encoding="utf-8") == migrated_snapshot(), STALE


def test_an_older_sqlite_ledger_still_migrates_through_alembic(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    _by_alembic(old, "0012")
    with open_ledger(f"sqlite:///{old}") as ledger, ledger.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    assert _schema(f"sqlite:///{old}") == _schema(_by_snapshot(tmp_path / "new.db"))


def test_a_database_with_tables_of_its_own_is_not_treated_as_new(tmp_path: Path) -> None:
    # Only an empty file gets the snapshot; anything else goes through Alembic as before, which
    # refuses to create a table that is already there rather than replay over it.
    path = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE jobs (id TEXT)")
    engine.dispose()
    with pytest.raises(sa.exc.OperationalError, match="already exists"):
        open_ledger(f"sqlite:///{path}")


def test_a_new_sqlite_ledger_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys\nfrom stagegate.ledger import open_ledger\n"
        f"open_ledger({url!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_trigger_body_is_one_statement() -> None:
    text = (
        "-- header\n\nCREATE TABLE t (a);\n\nCREATE TRIGGER x BEFORE DELETE ON t\n"
        "BEGIN SELECT RAISE(ABORT, 'no; never'); END;\n"
    )
    assert list(statements(text)) == [
        "CREATE TABLE t (a)",
        "CREATE TRIGGER x BEFORE DELETE ON t\nBEGIN SELECT RAISE(ABORT, 'no; never'); END",
    ]
