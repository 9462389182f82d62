"""Parsing the service's JSON into typed values: lenient about absent fields, strict about types."""

from datetime import UTC, datetime

import pytest

from stagegate.client.errors import ServiceProtocolError
from stagegate.client.service_models import Node, NodeStaging, Staging, StagingProgress
from unit.client.service_samples import node_json, node_part, staging_json


def test_a_staging_parses_every_field():
    s = Staging.from_json(staging_json(digest="d" * 64))
    assert (s.id, s.state, s.source, s.mode) == (
        "st-1",
        "transferring",
        "s3://datasets/imagenet",
        "replicate",
    )
    assert (s.job, s.user, s.project, s.digest) == ("train-42", "alice", "vision", "d" * 64)
    assert s.created_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert s.progress == StagingProgress(5, 20, 500, 2000, 100.0, 15.0)
    assert s.nodes[0] == NodeStaging("gpu-01", "transferring", None, 0, 10, 0, 1000, False)
    assert [n.node for n in s.nodes] == ["gpu-01", "gpu-02"]
    assert not s.terminal
    assert s.nodes_ready == 0


@pytest.mark.parametrize("state", ["ready", "failed", "denied", "released"])
def test_terminal_states(state):
    assert Staging.from_json(staging_json(state)).terminal


@pytest.mark.parametrize("state", ["pending", "planning", "transferring"])
def test_running_states(state):
    assert not Staging.from_json(staging_json(state)).terminal


def test_to_json_is_the_servers_json_unchanged():
    data = staging_json(created_at="2026-11-26T10:00:00Z", extra_field_from_a_newer_server=1)
    assert Staging.from_json(data).to_json() == data


def test_a_staging_built_in_code_has_the_contracts_shape():
    s = Staging(id="x", state="ready", nodes=(NodeStaging("n", "ready", "/p", cache_hit=True),))
    assert Staging.from_json(s.to_json()) == s
    assert set(s.to_json()) == set(staging_json())


def test_absent_optional_fields_get_defaults():
    s = Staging.from_json({"id": "st-2", "state": "pending"})
    assert s.progress == StagingProgress()
    assert (s.nodes, s.errors, s.reasons, s.job, s.created_at) == ((), (), (), None, None)


def test_naive_times_are_utc():
    s = Staging.from_json(staging_json(updated_at="2026-11-26T10:00:00"))
    assert s.updated_at == datetime(2026, 11, 26, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"id": None}, "staging.id"),
        ({"state": 3}, "staging.state"),
        ({"progress": {"bytes_done": "500"}}, "staging.progress.bytes_done"),
        ({"progress": {"bytes_done": True}}, "staging.progress.bytes_done"),
        ({"progress": {"rate_bytes_per_s": "fast"}}, "staging.progress.rate_bytes_per_s"),
        ({"nodes": [node_part(cache_hit="yes")]}, "staging.nodes[0].cache_hit"),
        ({"nodes": [{"state": "ready"}]}, "staging.nodes[0].node"),
        ({"nodes": "gpu-01"}, "staging.nodes"),
        ({"reasons": ["a", 2]}, "staging.reasons"),
        ({"created_at": "yesterday"}, "staging.created_at"),
    ],
)
def test_wrong_types_are_named_errors(change, named):
    with pytest.raises(ServiceProtocolError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Staging.from_json(staging_json(**change))


def test_not_an_object():
    with pytest.raises(ServiceProtocolError, match="not a JSON object"):
        Staging.from_json(["st-1"])


def test_a_node_parses_with_its_cache():
    n = Node.from_json(node_json())
    assert (n.name, n.alive, n.capacity, n.used, n.pinned, n.free) == (
        "gpu-01",
        True,
        500 * 10**9,
        120 * 10**9,
        20 * 10**9,
        380 * 10**9,
    )
    assert n.last_heartbeat == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert [(d.files, d.pins, d.state) for d in n.datasets] == [(1000, 1, "ready")]
    assert n.to_json() == node_json()


def test_a_node_without_limits_or_heartbeat():
    n = Node.from_json(node_json(capacity=None, free=None, last_heartbeat=None, alive=False, datasets=[]))
    assert (n.capacity, n.free, n.last_heartbeat, n.datasets) == (None, None, None, ())
    assert Node.from_json(n.to_json()) == n


def test_a_usage_row_keeps_moved_and_reused_apart_and_refuses_the_old_mixed_figure():
    from stagegate.client.service_models import usage_row

    row = usage_row(
        {
            "period": "all",
            "key": "alice",
            "bytes_from_source": 240,
            "bytes_from_peers": 240,
            "bytes_from_cache": 480,
            "stagings": 3,
        },
        "rows[0]",
    )
    moved_and_reused = (row.bytes_from_source, row.bytes_from_peers, row.bytes_from_cache)
    assert (*moved_and_reused, row.stagings) == (240, 240, 480, 3)
    with pytest.raises(ServiceProtocolError, match="older stagegate service"):
        usage_row({"period": "all", "key": "alice", "bytes_staged": 720}, "rows[0]")
