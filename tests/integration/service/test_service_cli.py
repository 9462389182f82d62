"""The service CLI as a user runs it: stage --wait, status, nodes, release, token create."""

import json
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, payload
from integration.service.cluster import iter_files

pytestmark = pytest.mark.integration


def test_stage_wait_status_nodes_release(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None})
    source = dataset("cli", {f"f{i}.bin": payload(f"cli{i}", 30_000) for i in range(5)})
    token = cluster.token("gina", "scientist", "nlp")

    staged = cluster.cli(
        "stage", source, "--node", "a", "--node", "b", "--job", "run-7", "--wait", "--json", token=token
    )
    assert staged.returncode == 0, staged.stderr + cluster.logs()
    staging = json.loads(staged.stdout)
    assert staging["state"] == "ready"
    for node in staging["nodes"]:
        assert len(list(iter_files(Path(node["path"])))) == 5

    status = cluster.cli("status", staging["id"], token=token)
    assert status.returncode == 0 and "ready" in status.stdout, status.stdout + status.stderr

    nodes = cluster.cli("nodes", "--json", token=token)
    assert nodes.returncode == 0, nodes.stderr
    assert sorted(n["name"] for n in json.loads(nodes.stdout)["nodes"]) == ["a", "b"]

    released = cluster.cli("release", staging["id"], token=token)
    assert released.returncode == 0, released.stderr
    assert cluster.cli("status", staging["id"], "--json", token=token).stdout.count('"released"') >= 1


def test_stage_wait_exits_3_when_denied_and_2_without_a_token(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("pii", {"p.bin": b"p" * 100}, label="pii")
    token = cluster.token("hank", "job")

    denied = cluster.cli("stage", source, "--node", "a", "--wait", token=token)
    assert denied.returncode == 3, denied.stdout + denied.stderr
    assert "pii" in (denied.stdout + denied.stderr).lower()

    no_token = cluster.cli("stage", source, "--node", "a", "--wait")
    assert no_token.returncode == 2 and "STAGEGATE_TOKEN" in no_token.stderr


def test_token_create_prints_a_token_that_the_api_accepts(start_cluster) -> None:
    import subprocess

    cluster = start_cluster({"a": None})
    created = subprocess.run(
        [STAGEGATE, "token", "create", "--user", "ops", "--role", "admin"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = next(w for w in created.stdout.split() if w.startswith("sg_"))
    with cluster.http(token) as http:
        assert http.get("/v1/audit/verify").json()["ok"] is True
    with cluster.http(token + "x") as http:
        assert http.get("/v1/nodes").status_code == 401
