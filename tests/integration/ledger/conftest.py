"""Ledger fixtures: every test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL is required, never skipped (see ``integration.postgres``); each test gets a
database of its own, so tests never see each other's chains.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration.postgres import fresh_pg_database
from stagegate.ledger import Ledger, open_ledger

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    with fresh_pg_database(pg_admin) as url:
        yield url


# A SQLite ledger migrated once per session (per base temporary directory), for ledger_url to
# copy: a module-level cache, not a fixture, so conftests that import ledger_url need nothing more.
_migrated_sqlite: dict[Path, Path] = {}


def _migrated_sqlite_of(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if base not in _migrated_sqlite:
        path = tmp_path_factory.mktemp("ledger-template") / "ledger.db"
        open_ledger(f"sqlite:///{path}").close()  # its last connection closed: no -wal file beside it
        _migrated_sqlite[base] = path
    return _migrated_sqlite[base]


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL for an empty ledger database, on each backend in turn. When the test also takes
    ``ledger`` (which migrates it before the test begins), it is a copy of a database migrated
    once per session instead: the same schema, without a migration per test."""
    migrated = "ledger" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("ledger") / "ledger.db"
        if migrated:
            shutil.copyfile(_migrated_sqlite_of(tmp_path_factory), path)
        yield f"sqlite:///{path}"
    else:
        with fresh_pg_database(request.getfixturevalue("pg_admin"), migrated=migrated) as url:
            yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with open_ledger(ledger_url) as opened:
        yield opened
