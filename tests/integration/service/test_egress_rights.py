"""End to end (API, a node worker, PostgreSQL, Redis, moto): a service egress acts only within
the requester's rights. A path destination lies under the requester's own egress root;
lineage is the requester's (or their project's) own; only a steward lowers a label."""

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, write_tree
from integration.service.cluster import dump
from integration.service.test_egress_service import wait_egress
from stagegate.ledger import AuditTrail
from stagegate.workers.egress_labels import DECLASSIFICATION_MARGIN_NS

pytestmark = pytest.mark.integration

CONFIDENTIAL_STAGING = (
    b"version: 1\nstaging: confidential\negress:\n"
    b'  - prefix: "s3://"\n    max_level: public\n  - prefix: "/"\n    max_level: public\n'
)


def egress(cluster: Any, token: str, **body: Any) -> dict[str, Any]:
    body.setdefault("node", "a")
    if "names" not in body:
        body["latest"] = 1
    with cluster.http(token) as http:
        response = http.post("/v1/egress", json=body)
    assert response.status_code == 202, response.text
    return wait_egress(cluster, token, response.json()["id"])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_path_destination_must_lie_under_the_requesters_own_egress_root(
    start_cluster: Any, tmp_path: Path
) -> None:
    cluster = start_cluster({"a": None})
    root = cluster.roots["a"]
    alices = write_tree(root / "runs" / "alice" / "run1", {"checkpoint-100/model.bin": b"alice's weights"})
    (alices / "step_1000").write_bytes(b"* * * * * root sh -c 'id > /tmp/owned'\n")
    os.setxattr(alices / "checkpoint-100", "user.classification", b"public")
    os.setxattr(alices / "step_1000", "user.classification", b"public")
    bobs = write_tree(root / "runs" / "bob" / "run1", {"checkpoint-100/model.bin": b"bob's weights"})
    cached = write_tree(root / "datasets" / ("d" * 64), {"checkpoint-100/model.bin": b"cached bytes"})
    cron = write_tree(tmp_path / "etc" / "cron.d", {"placeholder": b""})
    before = {p: snapshot(p) for p in (bobs, cached, cron)}
    token = cluster.token("alice", "scientist")

    for target, name in ((bobs, "checkpoint-100"), (cached, "checkpoint-100"), (cron, "step_1000")):
        final = egress(cluster, token, run_dir=str(alices), destination=str(target), names=[name])
        assert final["state"] == "failed", dump(final) + cluster.logs()
        assert "outside your egress root" in " ".join(final["errors"])
        assert f"{root / 'egress' / 'alice'}/" in " ".join(final["errors"])
    assert {p: snapshot(p) for p in before} == before
    assert [e.action for e in AuditTrail(cluster.ledger).query(actor="alice")].count("egress.failed") == 3

    # Below their own egress root it works, and a second egress there never overwrites.
    mine = root / "egress" / "alice" / "models"
    final = egress(
        cluster, token, run_dir=str(alices), destination=f"file://{mine}", names=["checkpoint-100"]
    )
    assert final["state"] == "completed", dump(final) + cluster.logs()
    assert (mine / "checkpoint-100" / "model.bin").read_bytes() == b"alice's weights"
    (alices / "checkpoint-100" / "model.bin").write_bytes(b"alice's newer weights")
    final = egress(cluster, token, run_dir=str(alices), destination=str(mine), names=["checkpoint-100"])
    assert final["state"] == "failed" and "already exists" in " ".join(final["errors"]), dump(final)
    assert (mine / "checkpoint-100" / "model.bin").read_bytes() == b"alice's weights"


def test_a_worker_refuses_an_egress_root_that_overlaps_the_node_cache(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**subprocess_env, "STAGEGATE_EGRESS_ROOT": str(tmp_path / "node" / "datasets" / "out")}
    args = [STAGEGATE, "worker", "--node", "a", "--root", str(tmp_path / "node"), "--metrics-port", "0"]

    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)

    assert proc.returncode == 2, proc.stderr
    assert "STAGEGATE_EGRESS_ROOT" in proc.stderr and "overlap" in proc.stderr


def test_lineage_is_the_requesters_and_only_a_steward_lowers_a_label(
    start_cluster: Any, dataset: Any, bucket: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(CONFIDENTIAL_STAGING)
    cluster = start_cluster({"a": None}, env={"STAGEGATE_POLICY": str(policy)})
    source = dataset("patients", {"x.csv": b"id,diagnosis\n"}, label="confidential")
    alice = cluster.token("alice", "scientist", "vision")
    with cluster.http(alice) as http:
        staged = http.post("/v1/stagings", json={"source": source, "nodes": ["a"], "job": "train-1"})
    assert staged.status_code == 202, staged.text
    assert cluster.wait_terminal(alice, staged.json()["id"])["state"] == "ready"

    def run_of(user: str) -> Path:
        run = write_tree(cluster.roots["a"] / "runs" / user / "run", {"checkpoint-100/model.bin": b"w"})
        (run / "checkpoint-100" / ".classification").write_text("public\n")
        return run

    # Bob names alice's job reference: refused, and nothing of her data's labels is told.
    bob = cluster.token("bob", "scientist")
    final = egress(cluster, bob, run_dir=str(run_of("bob")), destination=f"s3://{bucket}/x", job="train-1")
    assert final["state"] == "denied", dump(final) + cluster.logs()
    assert "names stagings you did not run" in " ".join(final["reasons"])
    assert "confidential" not in dump(final)
    # Carol works in alice's project: the project's lineage is hers, and it is confidential.
    carol = cluster.token("carol", "scientist", "vision")
    final = egress(
        cluster, carol, run_dir=str(run_of("carol")), destination=f"s3://{bucket}/x", job="train-1"
    )
    assert final["state"] == "denied" and "(lineage:train-1) is confidential" in " ".join(final["reasons"])
    # Alice's own public label does not lower her model's confidential lineage.
    alices = run_of("alice")
    final = egress(cluster, alice, run_dir=str(alices), destination=f"s3://{bucket}/x", job="train-1")
    assert final["state"] == "denied" and "(lineage:train-1) is confidential" in " ".join(final["reasons"])

    time.sleep(DECLASSIFICATION_MARGIN_NS / 1e9 + 0.2)  # the checkpoint is older than the record
    body = {"node": "a", "run_dir": str(alices), "checkpoint": "checkpoint-100", "label": "public"}
    body["reason"] = "synthetic weights, reviewed"
    with cluster.http(alice) as http:
        refused = http.post("/v1/declassifications", json=body)  # not her own to lower
    assert refused.status_code == 403, refused.text
    steward = cluster.token("sue", "steward")
    proc = cluster.cli(
        "declassify",
        f"{alices}/checkpoint-100",
        "--node",
        "a",
        "--label",
        "public",
        "--reason",
        body["reason"],
        token=steward,
    )
    assert proc.returncode == 0, proc.stderr
    declassified = AuditTrail(cluster.ledger).query(action="label.declassified")
    assert [(e.actor, e.role, e.details["to"]) for e in declassified] == [("sue", "steward", "public")]

    final = egress(cluster, alice, run_dir=str(alices), destination=f"s3://{bucket}/x", job="train-1")
    assert final["state"] == "completed", dump(final) + cluster.logs()
    allowed = AuditTrail(cluster.ledger).query(job=final["id"], action="policy.allowed")[0]
    cited = allowed.details["declassified"]["checkpoint-100"]  # type: ignore[index]
    assert (
        cited["id"] == declassified[0].details["id"]
        and cited["by"] == "sue"
        and cited["from"] == "confidential"
    )
    origin = allowed.details["labels"]["checkpoint-100"]["origin"]  # type: ignore[index]
    assert origin == f"declassified:{cited['id']} by sue"


def test_a_fifo_label_file_fails_the_egress_and_leaves_the_worker_serving(
    start_cluster: Any, s3_client: Any, bucket: str
) -> None:
    cluster = start_cluster({"a": None})
    run = write_tree(cluster.roots["a"] / "runs" / "alice" / "run", {"checkpoint-1/model.bin": b"w"})
    os.mkfifo(run / "checkpoint-1" / ".classification")  # read blocking, it would wedge the worker
    good = write_tree(cluster.roots["a"] / "runs" / "alice" / "good", {"checkpoint-2/model.bin": b"w2"})
    (good / "checkpoint-2" / ".classification").write_text("public\n")
    token = cluster.token("alice", "scientist")

    final = egress(cluster, token, run_dir=str(run), destination=f"s3://{bucket}/x")
    assert final["state"] == "failed", dump(final) + cluster.logs()
    assert f"{run}/checkpoint-1/.classification is a FIFO" in " ".join(final["errors"])

    final = egress(cluster, token, run_dir=str(good), destination=f"s3://{bucket}/y")
    assert final["state"] == "completed", dump(final) + cluster.logs()
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="x/")
