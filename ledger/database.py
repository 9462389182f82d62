"""Engines for the ledger database, and the :class:`Ledger` handle callers pass around."""

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

# SQLite waits this long for another writer's lock before failing: appends are short, but
# eight processes on two cores can queue for a while.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option: this connection only reads, so on SQLite it need not take the write lock.
READ_ONLY = "ledger_read_only"


def _configure_sqlite(engine: Engine) -> None:
    """SQLAlchemy's documented recipe for real SQLite transactions, with BEGIN IMMEDIATE.

    pysqlite's own transaction handling begins lazily (deferred) and commits before DDL. A
    deferred transaction that reads the chain head and then writes can lose the race for the
    write lock after another writer appended, and would fork the chain; BEGIN IMMEDIATE takes
    the lock before the head is read. WAL lets readers go on while one writer writes.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_ledger_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    # READ COMMITTED (PostgreSQL's default, pinned here): each statement sees what committed
    # before it, so the head read after the advisory lock sees the previous append. Under
    # REPEATABLE READ the snapshot could predate the lock and the chain would fork.
    # hide_parameters: an error's message (and so a log line) never carries a row's values,
    # which can be token hashes or source URLs.
    return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED", hide_parameters=True)


@dataclass(frozen=True, slots=True)
class Ledger:
    """An open ledger database: its engine, and sessions bound to it."""

    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read_session(self) -> Session:
        """A session for reads only; on SQLite it does not queue behind writers."""
        return Session(bind=self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
