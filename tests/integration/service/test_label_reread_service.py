"""Through the service: a label file rewritten while the only batch copies is caught by the
finalize step, before READY; the staging fails, audited, and the node's copy stays unpublished."""

from pathlib import Path

import pytest

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump, iter_files, wait_for

pytestmark = pytest.mark.integration

FILES = {f"part-{i}.bin": payload(f"relabel{i}", 400_000) for i in range(8)}
# One batch of 3.2 MB at 300 kB/s: about ten seconds in which to relabel the dataset.
SLOW = {"STAGEGATE_BANDWIDTH_LIMIT": "300KB"}


def copied_files(root: Path) -> list[Path]:
    datasets = root / "datasets"
    return [p for d in datasets.iterdir() for p in iter_files(d)] if datasets.is_dir() else []


def test_label_file_rewritten_during_the_only_batch_fails_the_staging(
    start_cluster, dataset, s3_client, bucket
) -> None:
    cluster = start_cluster({"a": None}, env=SLOW)
    source = dataset("relabel", FILES)
    token = cluster.token("frank", "scientist")
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code == 202, response.text
    staging_id = response.json()["id"]

    # A file in place means the batch began, and with it its check of the label files.
    wait_for("a first file copied", lambda: copied_files(cluster.roots["a"]), timeout=60)
    s3_client.put_object(Bucket=bucket, Key="relabel/.classification", Body=b"confidential\n")

    final = cluster.wait_terminal(token, staging_id, timeout=120)
    assert final["state"] == "failed", dump(final) + cluster.logs()
    assert any(".classification" in e and "changed" in e for e in final["errors"]), dump(final)
    assert not list((cluster.roots["a"] / "datasets").glob("*/.stagegate/READY")), "published anyway"
    actions = audit_actions(cluster.ledger, staging_id)
    assert actions == ["stage.requested", "policy.allowed", "stage.failed"], actions
