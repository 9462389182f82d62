"""Labels through the service (API, a node worker, PostgreSQL, Redis, S3 on loopback): an own
label only raises its directory's, a tag named in another case counts, and a label file
rewritten while the only batch copies is caught by the finalize step, before READY."""

from pathlib import Path

import pytest

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump, iter_files, wait_for
from stagegate.transfer.layout import STATE_PREFIX

pytestmark = pytest.mark.integration

FILES = {f"part-{i}.bin": payload(f"relabel{i}", 400_000) for i in range(8)}
# One batch of 3.2 MB at 300 kB/s: about ten seconds in which to relabel the dataset.
SLOW = {"STAGEGATE_BANDWIDTH_LIMIT": "300KB"}


def tag(s3_client, bucket: str, key: str, tags: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
    s3_client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})


@pytest.mark.parametrize(
    ("root_label", "tags"),
    [
        ("confidential", {"classification": "public"}),  # an own lower label lowers nothing
        ("public", {"Classification": "confidential"}),  # a tag named in another case counts
    ],
    ids=["own-lower-label", "tag-in-another-case"],
)
def test_labels_only_rise_on_the_service(
    start_cluster, dataset, s3_client, bucket, root_label: str, tags: dict[str, str]
) -> None:
    cluster = start_cluster({"a": None})
    files = {"x.bin": b"x" * 100, "y.bin": b"y" * 100}
    source = dataset("rise", files, label=root_label)
    for key in files:
        tag(s3_client, bucket, f"rise/{key}", tags)
    token = cluster.token("grace", "scientist")

    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})

    if root_label == "public":
        # S3 tags are read at copy time, as each object is opened (the plan reads none): the
        # plan is allowed, and the node's copy step refuses the tagged objects before a byte
        # of them is written, failing the staging with the policy's reason.
        assert response.status_code == 202, response.text
        staging_id = response.json()["id"]
        final = cluster.wait_terminal(token, staging_id, timeout=120)
        assert final["state"] == "failed", dump(final) + cluster.logs()
        assert any("denied by policy" in e and "confidential" in e for e in final["errors"]), dump(final)
        assert not [p for p in copied_files(cluster.roots["a"]) if p.name in files], (
            "a denied object was written"
        )
        assert audit_actions(cluster.ledger, staging_id) == [
            "stage.requested",
            "policy.allowed",
            "stage.failed",
        ]
        return
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    *objects, consulted = detail["reasons"]  # the objects, then where their labels were looked for
    assert sorted(r.split(" ")[0] for r in objects) == ["x.bin", "y.bin"], detail
    assert all("confidential" in r for r in objects), detail
    assert consulted.startswith("label files consulted: "), detail
    assert not list((cluster.roots["a"] / "datasets").iterdir())
    staging_id = detail["staging"]["id"]
    assert audit_actions(cluster.ledger, staging_id) == ["stage.requested", "policy.denied"]


def copied_files(root: Path) -> list[Path]:
    datasets = root / "datasets"
    if not datasets.is_dir():
        return []
    # Each dataset's state directory (lock, tmp, batch records) sits beside it: not data.
    return [p for d in datasets.iterdir() if not d.name.startswith(STATE_PREFIX) for p in iter_files(d)]


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
    assert not list((cluster.roots["a"] / "datasets").glob(".stagegate-*/READY")), "published anyway"
    actions = audit_actions(cluster.ledger, staging_id)
    assert actions == ["stage.requested", "policy.allowed", "stage.failed"], actions
