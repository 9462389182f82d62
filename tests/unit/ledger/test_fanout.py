"""The pure rules of peer fan-out (``ledger.fanout``): which nodes read the source, which
receivers may copy a batch now, and in which order a receiver tries the peers."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.ledger.fanout import Peer, least_served_first, released, source_readers, spread
from stagegate.ledger.tasks import TaskKey

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


@given(NODES, st.integers(0, 64), st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 9)))
def test_a_receiver_tries_every_peer_once(nodes: list[str], turn: int, served: dict[str, int]) -> None:
    peers = [Peer(n, f"http://{n}:1") for n in nodes]
    assert sorted(spread(peers, turn), key=lambda p: p.node) == sorted(peers, key=lambda p: p.node)
    ordered = least_served_first(peers, turn, served)
    assert sorted(ordered, key=lambda p: p.node) == sorted(peers, key=lambda p: p.node)
    counts = [served.get(p.node, 0) for p in ordered]
    assert counts == sorted(counts)  # the least served first


def test_consecutive_receivers_ask_the_newest_holders_in_turn() -> None:
    peers = [Peer(n, "") for n in ("a", "b", "c")]  # a read the source and served b and c
    served = {"a": 2}
    firsts = [least_served_first(peers, turn, served)[0].node for turn in range(3, 9)]
    assert firsts == ["c", "b", "c", "b", "c", "b"]


def _copy(node: str, idx: int) -> TaskKey:
    return TaskKey("job", "copy", node, idx)


def test_a_batch_goes_to_as_many_receivers_as_its_holders_may_serve() -> None:
    waiting = [_copy(n, idx) for n in "bcde" for idx in (0, 1, 2)]
    # batch 0: one holder with one copy in flight; batch 1: two holders, none; batch 2: none yet
    go = released(waiting, {0: 1, 1: 2}, {0: 1}, per_holder=2)
    assert go == [_copy("b", 0), _copy("b", 1), _copy("c", 1), _copy("d", 1), _copy("e", 1)]


@given(
    st.integers(1, 64),
    st.integers(0, 64),
    st.integers(0, 128),
    st.integers(1, 8),
)
def test_copies_in_flight_never_pass_the_holders_limit(
    receivers: int, holders: int, in_flight: int, per_holder: int
) -> None:
    waiting = [_copy(f"n{i}", 0) for i in range(receivers)]
    go = released(waiting, {0: holders} if holders else {}, {0: in_flight}, per_holder)
    assert len(go) == max(0, min(receivers, holders * per_holder - in_flight))
    assert go == waiting[: len(go)]  # in the order they would be sent
