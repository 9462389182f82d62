"""The text of ``status``, ``nodes`` and ``stage --wait``, from typed answers and a fixed clock."""

from datetime import UTC, datetime, timedelta

import pytest

from stagegate.client.service_models import Node, Staging
from stagegate.client.service_render import (
    bar_progress,
    changes,
    format_age,
    render_nodes,
    render_status,
    render_submitted,
    table,
    verdict,
)
from unit.client.service_samples import node_json, node_part, staging_json

T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


def staging(state: str = "transferring", **over) -> Staging:
    return Staging.from_json(staging_json(state, **over))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (-3, "0s ago"),  # a server clock a little ahead
        (0, "0s ago"),
        (59.9, "59s ago"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (3600, "1h ago"),
        (86399, "23h ago"),
        (2 * 86400 + 5, "2d ago"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text


def test_table_aligns_columns_and_strips_trailing_space():
    lines = table(["A", "BB"], [["xxx", "y"], ["z", ""]], indent="  ")
    assert lines == ["  A    BB", "  xxx  y", "  z"]


def test_status_while_transferring():
    text = render_status(staging(), now=T0 + timedelta(seconds=4))
    lines = text.splitlines()
    assert lines[0] == "staging st-1: transferring"
    assert "  source    s3://datasets/imagenet (replicate)" in lines
    assert "  user      alice  project vision  job train-42" in lines
    assert "  progress  25.0%  500 B / 2.0 kB  files 5/20  100 B/s  ETA 0:15" in lines
    assert "  updated   4s ago" in lines
    assert "  nodes     0/2 ready" in lines
    header = next(line for line in lines if "NODE" in line)
    assert header.split() == ["NODE", "STATE", "FILES", "BYTES", "PATH"]
    row = next(line for line in lines if line.strip().startswith("gpu-02"))
    assert row.split() == ["gpu-02", "pending", "0/10", "0", "B", "/", "1.0", "kB", "-"]
    assert "digest" not in text and "errors" not in text and "denied" not in text


def test_status_when_ready_shows_paths_cache_hits_and_digest_but_no_eta():
    nodes = [
        node_part("gpu-01", "ready", path="/nvme/ds/abc", files_done=10, bytes_done=1000),
        node_part("gpu-02", "ready", path="/nvme/ds/abc", files_done=10, bytes_done=1000, cache_hit=True),
    ]
    text = render_status(staging("ready", nodes=nodes, digest="f" * 64), now=T0)
    assert "  nodes     2/2 ready" in text
    assert "ETA" not in text and "B/s" not in text
    assert f"  digest    {'f' * 64}" in text
    gpu2 = next(line for line in text.splitlines() if "gpu-02" in line)
    assert "ready (cache hit)" in gpu2 and gpu2.endswith("/nvme/ds/abc")


def test_status_when_denied_lists_the_reasons():
    text = render_status(staging("denied", nodes=[], reasons=["val/p.csv is confidential"]), now=T0)
    assert text.splitlines()[-2:] == ["  denied because:", "    val/p.csv is confidential"]
    assert "nodes" not in text


def test_status_when_failed_lists_the_errors():
    nodes = [node_part("gpu-01", "failed")]
    text = render_status(staging("failed", nodes=nodes, errors=["gpu-01: disk full"]), now=T0)
    assert text.splitlines()[-2:] == ["  errors:", "    gpu-01: disk full"]


def test_status_of_a_staging_with_no_totals_yet():
    s = Staging.from_json({"id": "st-9", "state": "planning"})
    text = render_status(s, now=T0)
    assert "  progress  -  0 B / 0 B  files 0/0" in text
    assert "  user      -" in text


def test_nodes_table():
    dead = node_json("gpu-02", alive=False, last_heartbeat="2026-11-26T09:00:00+00:00", datasets=[])
    unlimited = node_json("gpu-03", capacity=None, free=None, last_heartbeat=None)
    nodes = [Node.from_json(d) for d in (node_json(), dead, unlimited)]
    lines = render_nodes(nodes, now=T0 + timedelta(seconds=3)).splitlines()
    assert lines[0].split() == [
        "NODE",
        "ALIVE",
        "CAPACITY",
        "USED",
        "PINNED",
        "FREE",
        "DATASETS",
        "HEARTBEAT",
    ]
    assert lines[1].split() == [
        "gpu-01", "yes", "500.0", "GB", "120.0", "GB", "20.0", "GB", "380.0", "GB", "1", "3s", "ago"
    ]  # fmt: skip
    assert lines[2].split()[:2] == ["gpu-02", "NO"]
    assert lines[2].split()[-3:] == ["0", "1h", "ago"]
    assert lines[3].split()[2] == "unlimited" and lines[3].split()[-1] == "never"
    # the columns line up under their headers
    assert lines[1].index("yes") == lines[2].index("NO") == lines[0].index("ALIVE")
    assert lines[1].index("3s ago") == lines[0].index("HEARTBEAT")


def test_no_nodes_says_how_to_start_one():
    assert "stagegate worker" in render_nodes([], now=T0)


def test_submitted_line_is_id_then_state():
    assert render_submitted(staging("pending")) == "st-1 pending"


def test_changes_from_nothing_names_the_state_and_started_nodes():
    assert changes(None, staging()) == ["staging st-1: transferring", "  gpu-01: transferring"]


def test_changes_only_what_changed():
    before = staging()
    same_but_further = staging(progress={"bytes_done": 900, "bytes_total": 2000})
    assert changes(before, same_but_further) == []
    ready = [node_part("gpu-01", "ready", path="/nvme/x"), node_part("gpu-02", "ready", cache_hit=True)]
    after = staging("ready", nodes=ready)
    assert changes(before, after) == [
        "staging st-1: ready",
        "  gpu-01: ready at /nvme/x",
        "  gpu-02: ready (cache hit)",
    ]


def test_verdict():
    assert verdict(staging("ready")) == []
    assert verdict(staging("transferring")) == []
    assert verdict(staging("denied", reasons=["a is restricted"])) == [
        "stagegate: staging st-1 was denied by the policy:",
        "  a is restricted",
    ]
    failed = staging("failed", errors=["checksum mismatch"], nodes=[node_part("gpu-01", "failed")])
    assert verdict(failed) == ["stagegate: staging st-1 failed", "  checksum mismatch", "  gpu-01: failed"]
    assert verdict(staging("released", nodes=[]))[0] == "stagegate: staging st-1 released"


def test_bar_progress_only_once_there_is_a_total():
    assert bar_progress(staging("planning")) is None
    assert bar_progress(staging("transferring", progress={"bytes_total": 0})) is None
    progress, note = bar_progress(staging()) or (None, "")
    assert progress is not None
    assert (progress.bytes_done, progress.bytes_total, progress.files_done, progress.files_total) == (
        500,
        2000,
        5,
        20,
    )
    assert note == "nodes 0/2 ready"
