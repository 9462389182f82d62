"""In service mode too, a node's dataset directory holds exactly the dataset: its state lies
beside it in ``<root>/datasets/.stagegate-<digest>``, and a cached copy an older stagegate
laid out (the state inside) is copied afresh rather than handed to a job."""

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump, iter_files
from stagegate.ledger import AuditTrail
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of
from stagegate.transfer.sealed import fingerprint, seal, unseal

pytestmark = pytest.mark.integration

IMAGES = {"cats/a.jpg": payload("cat", 70_001), "dogs/b.jpg": payload("dog", 30_007)}


def submit(cluster: Any, token: str, source: str) -> dict[str, Any]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return cluster.wait_terminal(token, body["id"])  # type: ignore[no-any-return]


def du_bytes(root: Path) -> int:
    return sum(
        (Path(dirpath) / name).lstat().st_size for dirpath, _, files in os.walk(root) for name in files
    )


def test_a_two_class_image_folder_stages_as_exactly_two_classes_on_a_node(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None})
    final = submit(cluster, cluster.token("alice", "scientist"), dataset("pets", IMAGES))
    assert final["state"] == "ready", dump(final) + cluster.logs()
    path = Path(final["nodes"][0]["path"])

    assert sorted(entry.name for entry in os.scandir(path)) == ["cats", "dogs"]
    assert sorted(entry.name for entry in os.scandir(path) if entry.is_dir()) == ["cats", "dogs"]
    assert du_bytes(path) == sum(len(v) for v in IMAGES.values())
    state = state_dir_of(path)
    assert state.parent == cluster.roots["a"] / "datasets"
    assert (state / "READY").is_file() and (state / "manifest.jsonl").is_file()
    assert sorted(os.listdir(cluster.roots["a"] / "datasets")) == sorted([path.name, state.name])


def _as_an_older_stagegate_left_it(cluster: Any, path: Path) -> None:
    """The cached copy as an older stagegate sealed it: the state inside, fingerprinted with it."""
    unseal(path)
    state_dir_of(path).rename(path / LEGACY_STATE_DIR)
    seal(path)
    with cluster.ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE node_datasets SET fingerprint = :f WHERE path = :p"),
            {"f": fingerprint(path), "p": str(path)},
        )


def test_a_cached_copy_in_the_older_layout_is_copied_afresh(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None}, env={"STAGEGATE_SCRUB_RATE": "0"})
    source = dataset("pets", IMAGES)
    first = submit(cluster, cluster.token("alice", "scientist"), source)
    assert first["state"] == "ready", dump(first) + cluster.logs()
    path = Path(first["nodes"][0]["path"])
    _as_an_older_stagegate_left_it(cluster, path)

    second = submit(cluster, cluster.token("bob", "scientist"), source)

    assert second["state"] == "ready", dump(second) + cluster.logs()
    assert second["nodes"][0]["path"] == str(path)
    assert sorted(entry.name for entry in os.scandir(path)) == ["cats", "dogs"]
    assert {p.relative_to(path).as_posix(): p.read_bytes() for p in iter_files(path)} == IMAGES
    assert (state_dir_of(path) / "READY").is_file()
    event = next(
        e for e in AuditTrail(cluster.ledger).query(job=second["id"]) if e.action == "dataset.quarantined"
    )
    assert "older stagegate" in event.details["mismatch"], event
    assert audit_actions(cluster.ledger, second["id"])[-1] == "stage.completed"
