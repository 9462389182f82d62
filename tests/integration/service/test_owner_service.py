"""Pins that end with their pod, on a whole service on loopback (API, a node worker, Redis,
PostgreSQL, S3 server) and a Kubernetes API on loopback (``integration.kube_api``): staged
through the CLI with --owner-pod, released by the worker's reconciler once the pod is deleted."""

import json
from pathlib import Path

import pytest

from integration.helpers import payload
from integration.kube_api import kube_api
from integration.service.cluster import wait_for
from stagegate.ledger import AuditTrail, Nodes

pytestmark = pytest.mark.integration


def test_the_worker_releases_a_staging_once_its_pod_is_deleted(
    start_cluster, dataset, tmp_path: Path
) -> None:
    with kube_api() as api:
        token_file = tmp_path / "sa-token"
        token_file.write_text(api.token)
        cluster = start_cluster(
            {"a": None},
            env={
                "STAGEGATE_KUBE_API": api.url,
                "STAGEGATE_KUBE_TOKEN_FILE": str(token_file),
                "STAGEGATE_OWNER_CHECK_SECONDS": "1",
            },
        )
        source = dataset("owned", {f"f{i}.bin": payload(f"o{i}", 20_000) for i in range(3)})
        jay = cluster.token("jay", "job", "vision")
        uid = api.add_pod("ml", "train-0")

        owner = ("--owner-pod", "ml/train-0", "--owner-uid", uid)
        staged = cluster.cli("stage", source, "--node", "a", *owner, "--wait", "--json", token=jay)
        assert staged.returncode == 0, staged.stderr + cluster.logs()
        staging = json.loads(staged.stdout)
        assert staging["owner"] == {"kind": "Pod", "namespace": "ml", "name": "train-0", "uid": uid}
        wait_for("a first owner check", lambda: api.requests)
        assert Nodes(cluster.ledger).all()[0].pinned > 0, "held while its pod runs"

        api.delete("Pod", "ml", "train-0")
        with cluster.http(jay) as http:
            state = lambda: http.get(f"/v1/stagings/{staging['id']}").json()["state"]  # noqa: E731
            wait_for("the release once the pod is gone", lambda: state() == "released", timeout=30)
        (event,) = AuditTrail(cluster.ledger).query(job=staging["id"], action="stage.released")
        assert event.details["by"] == "stagegate" and "Pod ml/train-0" in str(event.details["reason"])
        assert Nodes(cluster.ledger).all()[0].pinned == 0, "the space is evictable"
        assert {path for _, path in api.requests} == {"/api/v1/namespaces/ml/pods/train-0"}
        assert api.token not in cluster.logs()
