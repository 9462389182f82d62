"""The simulator's pure model: fair sharing, which resource binds, fan-out's rules."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.sim_model import GIB, NodeWork, Resources, _Flow, fair_rates, simulate
from bench.sim_work import gets_of
from stagegate.transfer.engine import TransferConfig

# No CPU, no request limit, no batch overhead: only the links under test bind.
LINKS_ONLY = Resources(
    cpu_ms_per_file=0,
    cpu_s_per_gib=0,
    peer_cpu_ms_per_file=0,
    peer_cpu_s_per_gib=0,
    serve_cpu_ms_per_file=0,
    serve_cpu_s_per_gib=0,
    batch_overhead_s=0,
    prefix_gets_per_s=1e12,
)


def node(name: str, size: int, files: int = 1, group: str = "share 0", **more: object) -> NodeWork:
    return NodeWork(name, source_bytes=size, source_files=files, source_gets=files, group=group, **more)  # type: ignore[arg-type]


@given(nic=st.floats(1e6, 1e11), size=st.integers(1 << 20, 1 << 44))
def test_doubling_the_bandwidth_halves_the_transfer(nic: float, size: int) -> None:
    r = replace(LINKS_ONLY, nic_bps=nic, s3_connection_bps=1e12, nvme_write_bps=1e12, s3_aggregate_bps=None)
    slow = simulate([node("a", size)], r)[0].seconds
    fast = simulate([node("a", size)], replace(r, nic_bps=2 * nic))[0].seconds
    assert fast == pytest.approx(slow / 2, rel=1e-9)
    assert slow == pytest.approx(size / nic, rel=1e-9)


def test_the_prefix_request_rate_binds_for_tiny_files() -> None:
    files = 1_000_000
    tiny = node("a", files * 1024, files)
    eta = simulate([tiny], replace(LINKS_ONLY, prefix_gets_per_s=5500.0))[0]
    assert eta.bottleneck == "prefix share 0"
    assert eta.seconds == pytest.approx(files / 5500.0)
    # the same bytes in 100 MB files are bound by the node's connections instead
    big = node("a", files * 1024, 10)
    assert simulate([big], replace(LINKS_ONLY, prefix_gets_per_s=5500.0))[0].bottleneck == "s3 connections a"


def test_nodes_reading_the_same_share_share_its_prefix_and_shards_do_not() -> None:
    r = replace(LINKS_ONLY, prefix_gets_per_s=5500.0)
    files = 110_000
    same = [node(n, files * 1024, files) for n in "abcd"]
    apart = [node(n, files * 1024, files, group=f"share {n}") for n in "abcd"]
    assert max(e.seconds for e in simulate(same, r)) == pytest.approx(4 * files / 5500.0)
    assert max(e.seconds for e in simulate(apart, r)) == pytest.approx(files / 5500.0)


def test_a_shared_link_is_split_fairly_and_what_one_leaves_goes_to_the_other() -> None:
    a = _Flow(node("a", 100), {"link": 1.0, "slow a": 1.0}, 100.0)
    b = _Flow(node("b", 100), {"link": 1.0}, 100.0)
    fair_rates([a, b], {"link": 10.0, "slow a": 2.0})
    assert (a.rate, a.limit) == (2.0, "slow a")
    assert (b.rate, b.limit) == (8.0, "link")


def test_cpu_per_file_and_per_gib_bind_one_core() -> None:
    r = replace(LINKS_ONLY, cpu_ms_per_file=2.0, cpu_s_per_gib=3.0, cores_per_node=1.0)
    eta = simulate([node("a", 10 * GIB, 1000)], r)[0]
    assert eta.bottleneck == "cpu a"
    assert eta.seconds == pytest.approx(1000 * 2e-3 + 10 * 3.0)
    assert simulate([node("a", 10 * GIB, 1000)], replace(r, cores_per_node=2.0))[0].seconds == pytest.approx(
        eta.seconds / 2
    )


def test_a_fan_out_receiver_ends_one_batch_after_its_lead() -> None:
    size, batches = 64 * GIB, 64
    reader = node("r", size, batches=batches, batch_bytes=size / batches)
    # the reader's source is slower than the fabric: the receiver cannot be ahead of it
    receiver = NodeWork(
        "p", peer_bytes=size, peer_files=1, lead="r", hops=1, batches=batches, batch_bytes=size / batches
    )
    r = replace(LINKS_ONLY, s3_connection_bps=1e8, connections_per_node=1, nic_bps=1e10)
    lead_eta, recv_eta = simulate([reader, receiver], r)
    assert lead_eta.seconds == pytest.approx(size / 1e8)
    assert recv_eta.seconds == pytest.approx(lead_eta.seconds + (size / batches) / 1e8)
    assert recv_eta.source_bytes == 0 and recv_eta.bottleneck == "lead r (s3 connections r)"


def test_the_per_batch_overhead_adds_up_on_a_node() -> None:
    r = replace(LINKS_ONLY, batch_overhead_s=0.5)
    base = simulate([node("a", GIB)], LINKS_ONLY)[0].seconds
    assert simulate([node("a", GIB, batches=10)], r)[0].seconds == pytest.approx(base + 5.0)


def test_gets_follow_the_engines_part_rule() -> None:
    config = TransferConfig()
    assert gets_of(10 << 20, config) == 1
    assert gets_of(config.multipart_threshold, config) == 1
    assert gets_of(1 << 30, config) == 16  # one big object in flight: split for all 16 connections


def replicated_to(n: int, size: int = 64 * GIB, files: int = 6400) -> list[NodeWork]:
    return [node(f"n{i}", size, files, batches=64, batch_bytes=size / 64) for i in range(n)]


def test_fan_out_as_built_spreads_each_batch_as_a_tree() -> None:
    """One reader, two copies in flight per holder (the default): n1 and n2 copy from n0, the
    other five from the holders of the second round, n0 to n2, two batches after the reader."""
    from bench.sim_work import ModePlan, fan_out
    from stagegate.ledger.fanout import Peer, least_served_first

    works = fan_out(ModePlan("replicate", [], replicated_to(8), 7), readers=1, per_holder=2).works
    assert [w.source_bytes for w in works] == [64 * GIB] + [0] * 7
    assert [w.hops for w in works] == [0, 1, 1, 2, 2, 2, 2, 2]
    assert [w.lead for w in works[1:3]] == ["n0", "n0"]
    # the five of the second round ask n1 and n2 in turn (n0 has served two copies already)
    assert [w.lead for w in works[3:]] == [
        least_served_first([Peer(n, "") for n in ("n0", "n1", "n2")], turn, {"n0": 2})[0].node
        for turn in range(3, 8)
    ]
    assert {w.lead for w in works[3:]} == {"n1", "n2"}
    assert sum(w.served_bytes for w in works) == 7 * 64 * GIB
    assert works[0].served_bytes < 7 * 64 * GIB  # the reader no longer serves every receiver


def test_with_room_for_all_at_once_the_readers_serve_every_receiver() -> None:
    from bench.sim_work import ModePlan, fan_out

    works = fan_out(ModePlan("replicate", [], replicated_to(8), 7), readers=1, per_holder=7).works
    assert [w.source_bytes for w in works] == [64 * GIB] + [0] * 7
    assert sum(w.source_gets for w in works) == 6400
    assert {w.lead for w in works[1:]} == {"n0"} and {w.hops for w in works[1:]} == {1}
    assert works[0].served_bytes == 7 * 64 * GIB and works[0].lead is None
    assert all(w.peer_bytes == 64 * GIB and w.peer_files == 6400 for w in works[1:])


def test_with_two_readers_each_receiver_asks_the_one_the_ledger_puts_first() -> None:
    from bench.sim_work import ModePlan, fan_out
    from stagegate.ledger.fanout import Peer, spread

    works = fan_out(ModePlan("replicate", [], replicated_to(8), 7), readers=2, per_holder=3).works
    assert [w.lead for w in works[:2]] == [None, None]
    for turn, w in enumerate(works[2:], start=2):
        assert w.lead == spread([Peer("n0", ""), Peer("n1", "")], turn)[0].node
    assert sum(w.served_bytes for w in works) == 6 * 64 * GIB
    assert sum(w.source_bytes for w in works) == 2 * 64 * GIB


def test_fan_out_off_is_replicate() -> None:
    from bench.sim_work import ModePlan, fan_out

    works = replicated_to(3)
    assert fan_out(ModePlan("replicate", [], works, 7), readers=0).works == works


def test_one_reader_serving_many_receivers_is_bound_by_its_outgoing_nic() -> None:
    from bench.sim_work import ModePlan, fan_out

    n, size = 9, 64 * GIB
    works = fan_out(ModePlan("replicate", [], replicated_to(n, size), 7), readers=1, per_holder=8).works
    # the source is faster than the NIC: 8 receivers share the reader's 10 GB/s outgoing NIC
    r = replace(LINKS_ONLY, s3_connection_bps=1e10, connections_per_node=1, nic_bps=1e10)
    etas = simulate(works, r)
    receivers = etas[1:]
    assert all(e.bottleneck == "nic-out n0" for e in receivers)
    # each receiver gets an eighth of it; the reader, alone on its source link, is done sooner
    one_batch = size / 64 / (1e10 / 8)
    assert receivers[0].seconds == pytest.approx(size / (1e10 / 8) + one_batch)
    assert etas[0].seconds < receivers[0].seconds
    # two receivers of a reader whose source is slower than half its NIC: the source binds
    few = fan_out(ModePlan("replicate", [], replicated_to(3, size), 7), readers=1).works
    etas = simulate(few, replace(r, s3_connection_bps=2e9))
    assert [e.bottleneck for e in etas] == ["s3 connections n0"] + ["lead n0 (s3 connections n0)"] * 2


def test_a_tree_ends_far_sooner_than_one_reader_serving_all_when_nics_bind() -> None:
    from bench.sim_work import ModePlan, fan_out

    r = replace(LINKS_ONLY, s3_connection_bps=1e10, connections_per_node=1, nic_bps=1e10)
    works = replicated_to(17, 64 * GIB)
    star = fan_out(ModePlan("replicate", [], works, 7), readers=1, per_holder=16).works
    tree = fan_out(ModePlan("replicate", [], works, 7), readers=1, per_holder=2).works
    star_s = max(e.seconds for e in simulate(star, r))
    tree_s = max(e.seconds for e in simulate(tree, r))
    # the star's 16 receivers share the reader's outgoing NIC; the tree's holders serve two each
    assert star_s == pytest.approx(64 * GIB / (1e10 / 16) + 64 * GIB / 64 / (1e10 / 16))
    assert tree_s < star_s / 4


def test_serving_shares_the_readers_cpu_with_its_own_copy() -> None:
    from bench.sim_work import ModePlan, fan_out

    size = 8 * GIB
    works = fan_out(ModePlan("replicate", [], replicated_to(3, size, 8), 7), readers=1).works
    r = replace(LINKS_ONLY, cpu_s_per_gib=1.0, peer_cpu_s_per_gib=1.0, serve_cpu_s_per_gib=0.5)
    etas = simulate(works, r)
    # the reader's core: 1 s/GiB for its own copy + 2 x 0.5 s/GiB serving two receivers, in step
    assert etas[0].seconds == pytest.approx(8 * 2.0)
    assert etas[0].bottleneck == "cpu n0"
    assert all(e.bottleneck == "lead n0 (cpu n0)" for e in etas[1:])


@given(
    n=st.integers(2, 12),
    readers=st.integers(1, 3),
    nic=st.floats(1e8, 1e11),
    s3=st.floats(1e7, 1e11),
    serve=st.floats(0, 3),
    peer=st.floats(0, 3),
)
def test_a_receiver_never_finishes_before_its_reader(
    n: int, readers: int, nic: float, s3: float, serve: float, peer: float
) -> None:
    from bench.sim_work import ModePlan, fan_out

    works = fan_out(ModePlan("replicate", [], replicated_to(n, 4 * GIB, 400), 7), readers=readers).works
    r = replace(
        LINKS_ONLY,
        nic_bps=nic,
        s3_connection_bps=s3,
        cpu_s_per_gib=1.0,
        peer_cpu_s_per_gib=peer,
        serve_cpu_s_per_gib=serve,
    )
    etas = {e.node: e.seconds for e in simulate(works, r)}
    for w in works:
        if w.lead is not None:
            assert etas[w.node] > etas[w.lead]


def test_a_capped_node_waits_only_for_what_each_batchs_burst_does_not_cover() -> None:
    """Every copy batch's limiter starts with one second of tokens (transfer.throttle): with
    ten 40 MB batches under a 4 MB/s cap, 10 x 4 MB pass at once and 360 MB wait, 90 s."""
    r = replace(LINKS_ONLY, node_cap_bps=4e6)
    (eta,) = simulate([node("a", 400_000_000, batches=10, batch_bytes=40e6)], r)
    assert eta.seconds == pytest.approx(90.0)
    assert eta.bottleneck == "cap a"
    # Batches no bigger than the cap's burst never wait for it: the S3 connections bind.
    (small,) = simulate([node("a", 4_000_000, batches=4, batch_bytes=1e6)], r)
    assert small.bottleneck == "s3 connections a" and small.seconds < 0.01
