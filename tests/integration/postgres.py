"""The PostgreSQL every integration suite uses: the server's ``test`` database, and a fresh
database per test created from it (dropped afterwards), so tests never see each other's rows.

PostgreSQL is required, never skipped: a suite that silently skips its main backend would
pass while proving nothing.

Two costs dominate a test's own database, and both are paid once here instead of per test:
migrating it (``migrated=True`` copies a template this process migrated once, which is what
``open_ledger`` would have made of the empty database), and dropping it (``DROP DATABASE``
waits for a checkpoint of the whole server, seconds on a busy machine: the drops run in the
background, several at once so their checkpoints coincide, and :func:`finish_drops` waits for
them when the session ends).
"""

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

PG_SERVER_URL = os.environ.get("STAGEGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Concurrent drops share one checkpoint; a few connections of the server's hundred suffice.
_DROPPERS = 4


def database_url(name: str) -> str:
    return sa.make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)


def _create(pg_admin: sa.Engine, name: str, template: str | None = None) -> None:
    # WAL_LOG (PostgreSQL 15's default, said here for a template too) copies without a checkpoint.
    copy = f' TEMPLATE "{template}" STRATEGY WAL_LOG' if template else ""
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))


def _drop(pg_admin: sa.Engine, name: str) -> None:
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _Drops:
    """Drops in the background; :meth:`finish` waits for them and raises the first failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def later(self, pg_admin: sa.Engine, name: str) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_DROPPERS, thread_name_prefix="pg-drop")
            self._pending.append(self._pool.submit(_drop, pg_admin, name))

    def finish(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for future in pending:
            future.result()


_drops = _Drops()
# The migrated template of each admin engine (one per session), made on first use.
_templates: dict[int, str] = {}
_templates_lock = threading.Lock()


def _migrated_template(pg_admin: sa.Engine) -> str:
    from stagegate.ledger import open_ledger

    with _templates_lock:
        if id(pg_admin) not in _templates:
            name = f"sg_template_{uuid.uuid4().hex[:12]}"
            _create(pg_admin, name)
            open_ledger(database_url(name)).close()  # closes its pool: a template must have no session
            _templates[id(pg_admin)] = name
        return _templates[id(pg_admin)]


def finish_drops(pg_admin: sa.Engine) -> None:
    """Wait for every background drop, then drop this engine's template: the session's end."""
    _drops.finish()
    with _templates_lock:
        template = _templates.pop(id(pg_admin), None)
    if template is not None:
        _drop(pg_admin, template)


@contextmanager
def fresh_pg_database(pg_admin: sa.Engine, *, migrated: bool = False) -> Iterator[str]:
    """The URL of a new database, dropped (connections and all) after exit: empty, or with
    ``migrated`` already at the newest schema, as ``open_ledger`` leaves a new database."""
    template = _migrated_template(pg_admin) if migrated else None
    name = f"sg_test_{uuid.uuid4().hex[:12]}"
    _create(pg_admin, name, template)
    try:
        yield database_url(name)
    finally:
        _drops.later(pg_admin, name)


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
    on exit, after the database (dropped at once: a role that owns a database cannot go)."""
    suffix = uuid.uuid4().hex[:12]
    owner, runtime = f"sg_owner_{suffix}", f"sg_app_{suffix}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{owner}" LOGIN'))
        conn.execute(sa.text(f'CREATE ROLE "{runtime}" LOGIN'))
    database = f"sg_test_{uuid.uuid4().hex[:12]}"
    try:
        _create(pg_admin, database)
        try:
            with pg_admin.connect() as conn:
                # The database's owner may create in its public schema (PostgreSQL 15+).
                conn.execute(sa.text(f'ALTER DATABASE "{database}" OWNER TO "{owner}"'))

            def as_role(role: str) -> str:
                url = sa.make_url(database_url(database)).set(username=role)
                return url.render_as_string(hide_password=False)

            yield TwoRoles(as_role(owner), as_role(runtime), owner, runtime)
        finally:
            _drop(pg_admin, database)
    finally:
        with pg_admin.connect() as conn:
            for role in (runtime, owner):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
