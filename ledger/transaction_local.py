"""Values kept for the transaction running on a connection, and for no later one.

``Connection.info`` belongs to the pooled DBAPI connection: it outlives the transaction that
wrote it, so a later transaction on the same connection would see it. What is kept here is
stored beside the transaction that kept it and answered only while that one runs (the audit
chain's held head and queued events, the cached datasets an admission locked and those it
found clear of quarantine).
"""

from collections.abc import Callable
from typing import TypeVar, cast

from sqlalchemy import Connection


def of_this_transaction(conn: Connection, key: str) -> object | None:
    """What was kept under ``key`` for the transaction running on ``conn`` now, or None."""
    held = conn.info.get(key)
    if held is None:
        return None
    transaction, value = held
    current = conn.get_transaction()
    if current is None or transaction is not current or not current.is_active:
        return None
    return cast(object, value)


def keep_for_this_transaction(conn: Connection, key: str, value: object) -> None:
    conn.info[key] = (conn.get_transaction(), value)


T = TypeVar("T")


def kept_or_new(conn: Connection, key: str, make: Callable[[], T]) -> T:
    """What is kept under ``key`` for the transaction running on ``conn``, or ``make()``'s new
    value, kept for it (a per-transaction memo the caller fills in)."""
    held = of_this_transaction(conn, key)
    if held is None:
        held = make()
        keep_for_this_transaction(conn, key, held)
    return cast(T, held)
