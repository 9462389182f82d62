"""The simulator's pure model: fair sharing, which resource binds, fan-out's rules."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.sim_model import GIB, NodeWork, Resources, _Flow, fair_rates, simulate, tree_hops
from bench.sim_work import gets_of
from stagegate.transfer.engine import TransferConfig

# No CPU, no request limit, no batch overhead: only the links under test bind.
LINKS_ONLY = Resources(
    cpu_ms_per_file=0,
    cpu_s_per_gib=0,
    peer_cpu_ms_per_file=0,
    peer_cpu_s_per_gib=0,
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


def test_a_fan_out_receiver_ends_after_its_lead_by_the_trees_depth() -> None:
    size, batches = 64 * GIB, 64
    reader = node("r", size, batches=batches, batch_bytes=size / batches)
    # the reader's source is slower than the fabric: the receiver cannot be ahead of it
    receiver = NodeWork(
        "p", peer_bytes=size, peer_files=1, lead="r", hops=2, batches=batches, batch_bytes=size / batches
    )
    r = replace(LINKS_ONLY, s3_connection_bps=1e8, connections_per_node=1, nic_bps=1e10)
    lead_eta, recv_eta = simulate([reader, receiver], r)
    assert lead_eta.seconds == pytest.approx(size / 1e8)
    assert recv_eta.seconds == pytest.approx(lead_eta.seconds + 2 * (size / batches) / 1e8)
    assert recv_eta.source_bytes == 0 and recv_eta.bottleneck.startswith("lead r")


def test_the_per_batch_overhead_adds_up_on_a_node() -> None:
    r = replace(LINKS_ONLY, batch_overhead_s=0.5)
    base = simulate([node("a", GIB)], LINKS_ONLY)[0].seconds
    assert simulate([node("a", GIB, batches=10)], r)[0].seconds == pytest.approx(base + 5.0)


def test_tree_depth() -> None:
    assert tree_hops(1, 1, 4) == 0
    assert tree_hops(5, 1, 4) == 1  # one reader serves four peers at once
    assert tree_hops(25, 1, 4) == 2
    assert tree_hops(64, 1, 4) == 3
    assert tree_hops(64, 4, 4) == 2


def test_gets_follow_the_engines_part_rule() -> None:
    config = TransferConfig()
    assert gets_of(10 << 20, config) == 1
    assert gets_of(config.multipart_threshold, config) == 1
    assert gets_of(1 << 30, config) == 16  # one big object in flight: split for all 16 connections


def test_fan_out_reads_every_object_once_from_the_source() -> None:
    from bench.sim_work import ModePlan, fan_out

    works = [node(f"n{i}", 64 * GIB, 6400, batches=64, batch_bytes=GIB) for i in range(8)]
    replicated = ModePlan("replicate", [], works, 7)
    taking_turns = fan_out(replicated, "fan-out", readers=1, fanout=4).works
    assert sum(w.source_bytes for w in taking_turns) == 64 * GIB
    assert sum(w.source_gets for w in taking_turns) == 6400
    assert all(w.source_bytes + w.peer_bytes == 64 * GIB and w.lead is None for w in taking_turns)
    fixed = fan_out(replicated, "fan-out-fixed", readers=1, fanout=4).works
    assert [w.source_bytes for w in fixed] == [64 * GIB] + [0] * 7
    assert {w.lead for w in fixed[1:]} == {"n0"} and {w.hops for w in fixed[1:]} == {2}
