"""A token's use is written at most once a minute per process, yet every request still reads
the token: one revoked right after a use is refused at once."""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from stagegate.ledger import Ledger, Tokens


@contextmanager
def _token_writes(ledger: Ledger) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS"):
            seen.append(statement)

    sa.event.listen(ledger.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(ledger.engine, "before_cursor_execute", record)


def test_a_burst_of_requests_writes_the_tokens_use_once(ledger: Ledger) -> None:
    tokens = Tokens(ledger)
    issued = tokens.create("alice", "scientist")
    with _token_writes(ledger) as writes:
        for _ in range(20):
            who = tokens.authenticate(issued.token)
            assert who is not None and who.user == "alice"
    assert len(writes) == 1
    (info,) = tokens.listed()
    assert info.last_used_at is not None


def test_a_token_revoked_right_after_a_use_is_refused_at_its_next_request(ledger: Ledger) -> None:
    tokens = Tokens(ledger)
    issued = tokens.create("mallory", "scientist")
    assert tokens.authenticate(issued.token) is not None
    Tokens(ledger).revoke(issued.id)  # another process (the admin's CLI)
    assert tokens.authenticate(issued.token) is None
