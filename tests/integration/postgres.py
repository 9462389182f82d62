"""The PostgreSQL every integration suite uses: the server's ``test`` database, and a fresh
database per test created from it (dropped afterwards), so tests never see each other's rows.

PostgreSQL is required, never skipped: a suite that silently skips its main backend would
pass while proving nothing.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TwoRoles:
    """A new database owned by a role of its own, and a runtime role that owns nothing."""

    owner_url: str
    runtime_url: str
    owner: str
    runtime: str


@contextmanager
def database_with_two_roles(pg_admin: sa.Engine) -> Iterator[TwoRoles]:
    """A fresh database owned by a new login role (the migrations' owner) and a second new login
    role for the service; both roles are cluster-wide, so they are uniquely named and dropped
    on exit, after the database."""
    suffix = uuid.uuid4().hex[:12]
    owner, runtime = f"sg_owner_{suffix}", f"sg_app_{suffix}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
        conn.execute(sa.text(f'CREATE ROLE "{runtime}" LOGIN'))
    try:
        with fresh_pg_database(pg_admin) as url:
            database = sa.make_url(url).database
            with pg_admin.connect() as conn:
                # The database's owner may create in its public schema (PostgreSQL 15+).
                conn.execute(sa.text(f'ALTER DATABASE "{database}" OWNER TO "{owner}"'))

            def as_role(role: str) -> str:
                return sa.make_url(url).set(username=role).render_as_string(hide_password=False)

            yield TwoRoles(as_role(owner), as_role(runtime), owner, runtime)
    finally:
        with pg_admin.connect() as conn:
            for role in (runtime, owner):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
