"""Pins that end with their pod, on a whole service on loopback (API, a node worker, Redis,
PostgreSQL, S3 server) and a Kubernetes API on loopback (``integration.kube_api``): staged
through the CLI with --owner-pod, released by the worker's reconciler once the pod is deleted."""

import json
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, payload
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


def test_a_worker_with_views_shows_the_pod_its_dataset_alone_until_released(
    start_cluster, dataset, tmp_path: Path
) -> None:
    """The worker runs in a user and mount namespace of its own (``unshare``), where it may
    bind-mount; /proc/PID/root shows the tree as it sees it, views and all."""
    with kube_api() as api:
        token_file = tmp_path / "sa-token"
        token_file.write_text(api.token)
        cluster = start_cluster({})
        root = tmp_path / "node-a"
        env = {
            **cluster.env,
            "STAGEGATE_VIEWS": "1",
            "STAGEGATE_KUBE_API": api.url,
            "STAGEGATE_KUBE_TOKEN_FILE": str(token_file),
            "STAGEGATE_OWNER_CHECK_SECONDS": "1",
        }
        argv = [
            STAGEGATE,
            "worker",
            "--node",
            "a",
            "--root",
            str(root),
            "--concurrency",
            "4",
            "--metrics-port",
            "0",
        ]
        worker = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", *argv],
            env=env,
            stdout=(tmp_path / "worker-a.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        cluster.workers["a"] = worker
        cluster.wait_nodes_ready()
        mine = dataset("mine", {"train/x.bin": payload("x", 30_000), "y.bin": payload("y", 1000)})
        theirs = dataset("theirs", {"secret.bin": payload("s", 1000)})
        jay = cluster.token("jay", "job", "vision")
        uid, other_uid = api.add_pod("ml", "train-0"), api.add_pod("ml", "other-0")

        def stage(source: str, pod: str, owner_uid: str) -> dict:  # type: ignore[type-arg]
            owner = ("--owner-pod", f"ml/{pod}", "--owner-uid", owner_uid)
            done = cluster.cli("stage", source, "--node", "a", *owner, "--wait", "--json", token=jay)
            assert done.returncode == 0, done.stderr + cluster.logs()
            return dict(json.loads(done.stdout))

        staging, other = stage(mine, "train-0", uid), stage(theirs, "other-0", other_uid)
        seen = Path(f"/proc/{worker.pid}/root") / str(root).lstrip("/") / "views"
        view = seen / uid / staging["id"]
        wait_for("the view", lambda: (view / "train" / "x.bin").exists(), timeout=30)
        assert sorted(p.name for p in (seen / uid).iterdir()) == [staging["id"]], "its own staging only"
        assert sorted(str(p.relative_to(view)) for p in view.rglob("*")) == ["train", "train/x.bin", "y.bin"]
        assert (view / "train" / "x.bin").read_bytes() == payload("x", 30_000)
        assert not (root / "views" / uid / staging["id"] / "y.bin").exists(), "a mount of the worker's alone"

        api.delete("Pod", "ml", "train-0")  # the pod is gone: its staging is released, its view goes
        wait_for("the view to go", lambda: not view.exists(), timeout=30)
        assert (seen / other_uid / other["id"] / "secret.bin").exists(), "another pod's view stays"
