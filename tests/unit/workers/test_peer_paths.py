"""The peer server's request paths: what a client makes is what the server reads back, and
nothing else is a peer path."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.workers.peer_paths import NotAPeerPathError, parse_peer_path, peer_path


@given(st.text(min_size=1), st.integers(0, 10**6), st.text(min_size=1))
def test_a_path_reads_back_as_it_was_made(job: str, idx: int, key: str) -> None:
    assert parse_peer_path(peer_path(job, idx, key)) == (job, idx, key)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/peer/j/0/a/b",  # an unquoted '/': not one segment
        "/v1/peer/j/x/a",
        "/v1/peer/j/-1/a",
        "/v1/peer/j/0",
        "/v1/peer/j/0/a?x=1",
        "/v1/peer/j/0/a#f",
        "/etc/passwd",
    ],
)
def test_anything_else_is_refused(path: str) -> None:
    with pytest.raises(NotAPeerPathError):
        parse_peer_path(path)
