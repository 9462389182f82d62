"""End to end: a checkpoint egress through the API, run by the node's worker, into S3 on loopback."""

import json
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import payload, write_tree
from integration.service.cluster import audit_actions, dump, wait_for
from stagegate.ledger import AuditTrail

pytestmark = pytest.mark.integration

MiB = 1 << 20


def make_run(root: Path) -> Path:
    run = root / "scratch" / "run-7"
    for step in (10, 20, 30):
        write_tree(
            run,
            {
                f"checkpoint-{step}/model.bin": payload(f"m{step}", 300_000 + step),
                f"checkpoint-{step}/trainer_state.json": json.dumps({"global_step": step}).encode(),
                f"checkpoint-{step}/.classification": b"public\n",
            },
        )
    return run


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def wait_egress(cluster: Any, token: str, egress_id: str) -> dict[str, Any]:
    with cluster.http(token) as http:

        def done() -> dict[str, Any] | None:
            body: dict[str, Any] = http.get(f"/v1/egress/{egress_id}").json()
            return body if body["state"] in ("completed", "failed", "denied") else None

        result: dict[str, Any] = wait_for(f"egress {egress_id}", done, timeout=60, every=0.2)
        return result


def test_egress_through_the_service_lands_byte_identical_in_s3(
    start_cluster: Any, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    cluster = start_cluster({"a": None})
    run = make_run(cluster.roots["a"] / "runs" / "alice")  # the node's runs root, alice's own
    before = tree(run)
    token = cluster.token("alice", "scientist", "vision")
    body = {
        "run_dir": str(run),
        "node": "a",
        "destination": f"s3://{bucket}/models/run-7",
        "latest": 2,
        "delete_unselected": True,
    }
    with cluster.http(token) as http:
        response = http.post("/v1/egress", json=body)
    assert response.status_code == 202, response.text
    egress_id = response.json()["id"]

    final = wait_egress(cluster, token, egress_id)

    assert final["state"] == "completed", dump(final) + cluster.logs()
    assert sorted(final["selected"]) == ["checkpoint-20", "checkpoint-30"]
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="models/run-7/")["Contents"]
    got = {
        o["Key"].removeprefix("models/run-7/"): s3_client.get_object(Bucket=bucket, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }
    assert got == {k: v for k, v in before.items() if not k.startswith("checkpoint-10/")}
    assert final["files"] == len(got) and final["bytes"] == sum(len(v) for v in got.values())
    assert tree(run) == got  # checkpoint-10 deleted, after verification
    assert audit_actions(cluster.ledger, egress_id) == [
        "egress.requested",
        "policy.allowed",
        "egress.completed",
        "checkpoint.deleted",
    ]
    completed = next(
        e for e in AuditTrail(cluster.ledger).query(job=egress_id) if e.action == "egress.completed"
    )
    assert completed.source == f"node:a:{run}"
    assert completed.details["node"] == "a" and completed.details["project"] == "vision"
    assert set(completed.details["checksums"]) == set(got)  # type: ignore[arg-type]

    # Someone else's egress does not exist for them; an auditor sees it.
    with cluster.http(cluster.token("bob", "scientist")) as http:
        assert http.get(f"/v1/egress/{egress_id}").status_code == 404
    with cluster.http(cluster.token("carol", "auditor")) as http:
        assert http.get(f"/v1/egress/{egress_id}").json()["state"] == "completed"


def test_unlabelled_checkpoint_is_denied_on_the_service(
    start_cluster: Any, bucket: str, tmp_path: Path
) -> None:
    cluster = start_cluster({"a": None})
    run = cluster.roots["a"] / "runs" / "alice" / "run"
    write_tree(run, {"step_100/model.bin": b"weights"})
    token = cluster.token("alice", "job")

    proc = cluster.cli(
        "egress", str(run), "--to", f"s3://{bucket}/m", "--latest", "1", "--node", "a", "--wait", token=token
    )

    assert proc.returncode == 3, proc.stdout + proc.stderr + cluster.logs()
    assert "no label and no lineage" in proc.stdout


def test_a_user_cannot_egress_another_users_run_or_a_path_outside_the_runs_root(
    start_cluster: Any, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    cluster = start_cluster({"a": None})
    alices = make_run(cluster.roots["a"] / "runs" / "alice")
    elsewhere = make_run(tmp_path / "elsewhere")
    token = cluster.token("bob", "scientist")

    for run_dir in (alices, elsewhere, cluster.roots["a"] / "runs" / "bob" / ".." / "alice" / alices.name):
        body = {"run_dir": str(run_dir), "node": "a", "destination": f"s3://{bucket}/stolen", "latest": 1}
        with cluster.http(token) as http:
            response = http.post("/v1/egress", json=body)
        assert response.status_code == 202, response.text
        final = wait_egress(cluster, token, response.json()["id"])
        assert final["state"] == "failed", dump(final)
        assert "not one of your runs" in " ".join(final["errors"])
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
    actions = [e.action for e in AuditTrail(cluster.ledger).query(actor="bob")]
    assert actions.count("egress.failed") == 3
