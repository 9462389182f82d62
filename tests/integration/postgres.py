"""The PostgreSQL every integration suite uses: the server's ``test`` database, and a fresh
database per test created from it (dropped afterwards), so tests never see each other's rows.

PostgreSQL is required, never skipped: a suite that silently skips its main backend would
pass while proving nothing.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_SERVER_URL = os.environ.get("STAGEGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_pg_database(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a new, empty database, dropped (connections and all) on exit."""
    name = f"sg_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
