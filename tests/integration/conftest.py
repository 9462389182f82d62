"""Fixtures every integration suite shares."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from integration.postgres import PG_SERVER_URL, finish_drops


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit connection pool to the server's ``test`` database, for CREATE/DROP DATABASE;
    at the session's end it waits for the test databases' background drops."""
    engine = sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the integration tests need PostgreSQL at {PG_SERVER_URL}: {exc}")
    try:
        yield engine
    finally:
        finish_drops(engine)
        engine.dispose()
