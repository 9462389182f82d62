"""Ledger fixtures: every test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL is required, never skipped: a ledger suite that silently skips its main backend
would pass while proving nothing. Each test gets a database of its own (created from the
``test`` database's server, dropped afterwards), so tests never see each other's chains.
"""

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ledger import Ledger, open_ledger

PG_SERVER_URL = os.environ.get("STAGEGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit connection pool to the server's ``test`` database, for CREATE/DROP DATABASE."""
    engine = sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the ledger tests need PostgreSQL at {PG_SERVER_URL}: {exc}")
    yield engine
    engine.dispose()


def _fresh_pg_database(pg_admin: sa.Engine) -> Iterator[str]:
    name = f"sg_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    yield from _fresh_pg_database(pg_admin)


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL for an empty ledger database, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    else:
        yield from _fresh_pg_database(request.getfixturevalue("pg_admin"))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with open_ledger(ledger_url) as opened:
        yield opened
