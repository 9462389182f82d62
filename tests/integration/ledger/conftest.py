"""Ledger fixtures: every test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL is required, never skipped (see ``integration.postgres``); each test gets a
database of its own, so tests never see each other's chains.
"""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from integration.postgres import fresh_pg_database
from stagegate.ledger import Ledger, open_ledger

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    with fresh_pg_database(pg_admin) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL for an empty ledger database, on each backend in turn. When the test also takes
    ``ledger`` (which migrates it before the test begins), a PostgreSQL one is a copy of an
    already migrated database: the same schema, without a migration per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    else:
        migrated = "ledger" in request.fixturenames
        with fresh_pg_database(request.getfixturevalue("pg_admin"), migrated=migrated) as url:
            yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with open_ledger(ledger_url) as opened:
        yield opened
