"""A token's use is written at most once a minute per process, yet every request still reads
the token: one revoked right after a use is refused at once."""

from integration.ledger.helpers import sql_statements
from stagegate.ledger import Ledger, Tokens


def test_a_burst_of_requests_writes_the_tokens_use_once(ledger: Ledger) -> None:
    tokens = Tokens(ledger)
    issued = tokens.create("alice", "scientist")
    with sql_statements(ledger) as statements:
        for _ in range(20):
            who = tokens.authenticate(issued.token)
            assert who is not None and who.user == "alice"
    writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE TOKENS")]
    assert len(writes) == 1
    (info,) = tokens.listed()
    assert info.last_used_at is not None


def test_a_token_revoked_right_after_a_use_is_refused_at_its_next_request(ledger: Ledger) -> None:
    tokens = Tokens(ledger)
    issued = tokens.create("mallory", "scientist")
    assert tokens.authenticate(issued.token) is not None
    Tokens(ledger).revoke(issued.id)  # another process (the admin's CLI)
    assert tokens.authenticate(issued.token) is None
