"""The pure rules of peer fan-out (``ledger.fanout``): which nodes read the source, and in which
order a receiver tries the peers."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.ledger.fanout import Peer, source_readers, spread

NODES = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)


def test_the_first_serving_nodes_of_the_request_read_the_source() -> None:
    assert source_readers(["c", "a", "b"], {"a", "b", "c"}, 1) == {"c"}
    assert source_readers(["c", "a", "b"], {"a", "b"}, 1) == {"a"}  # c is gone: a takes over
    assert source_readers(["c", "a", "b"], {"a", "b", "c"}, 2) == {"c", "a"}


def test_every_node_reads_the_source_without_fan_out_or_without_a_server() -> None:
    assert source_readers(["a", "b"], {"a", "b"}, 0) == {"a", "b"}
    assert source_readers(["a", "b"], set(), 1) == {"a", "b"}


@given(NODES, st.sets(st.sampled_from("abcdefgh")), st.integers(0, 4))
def test_some_node_always_reads_the_source(nodes: list[str], serving: set[str], readers: int) -> None:
    chosen = source_readers(nodes, serving, readers)
    assert chosen and chosen <= set(nodes)
    if readers >= 1 and serving & set(nodes):
        assert len(chosen) == min(readers, len(serving & set(nodes))) and chosen <= serving


@given(NODES, st.sampled_from("xyz"))
def test_a_receiver_tries_every_peer_once(nodes: list[str], receiver: str) -> None:
    peers = [Peer(n, f"http://{n}:1") for n in nodes]
    assert sorted(spread(peers, receiver), key=lambda p: p.node) == sorted(peers, key=lambda p: p.node)
