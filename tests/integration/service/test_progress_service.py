"""A service staging's progress as ``stage --wait --json --progress`` reports it, with a real
API and worker: the files done move one step at a time, not batch by batch (one batch of 40
files here, where the bar used to jump from 0 to 100 %), every stdout line parses as JSON,
and the last is the ready staging."""

import json

import pytest

from integration.helpers import payload

pytestmark = pytest.mark.integration

FILES = 40
SIZE = 25_000


def test_progress_moves_per_file_within_one_batch(start_cluster, dataset) -> None:
    # 100 kB/s: 40 files of 25 kB take about ten seconds, one batch (well under 1,000 files).
    # The default lease (the cluster's is short, for recovery tests): a quarter of it, when
    # progress was written before, is 30 s, longer than the whole staging.
    env = {"STAGEGATE_BANDWIDTH_LIMIT": "100000", "STAGEGATE_LEASE_SECONDS": "120"}
    cluster = start_cluster({"a": None}, env=env)
    source = dataset("slow", {f"f{i:02d}.bin": payload(f"slow{i}", SIZE) for i in range(FILES)})
    token = cluster.token("gina", "scientist")
    staged = cluster.cli("stage", source, "--node", "a", "--wait", "--json", "--progress", token=token)
    assert staged.returncode == 0, staged.stderr + cluster.logs()
    lines = [json.loads(line) for line in staged.stdout.splitlines()]  # every line is JSON
    assert lines[-1]["event"] == "summary" and lines[-1]["state"] == "ready"
    progress = [e for e in lines[:-1] if e["event"] == "progress"]
    seen = sorted({e["files_done"] for e in progress})
    inside = [n for n in seen if 0 < n < FILES]
    assert len(inside) >= 4, f"progress jumped: files done seen {seen}"
    done = [e["bytes_done"] for e in progress]
    assert done == sorted(done)
    assert progress[-1]["files_done"] == FILES and progress[-1]["bytes_done"] == FILES * SIZE
    assert all(e["rate_bytes_per_s"] is not None for e in progress if 0 < e["files_done"] < FILES)
