"""Subsets and labels above the prefix on the service, through the CLI as a user calls it:
real API, workers, Redis, PostgreSQL and the loopback S3 server."""

import json
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import payload, put_objects
from integration.service.cluster import dump, iter_files
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

FILES = {
    "val/a.bin": payload("a", 3000),
    "val/deep/b.bin": payload("b", 2000),
    "val/deep/c.tmp": b"scratch",
    "train/d.bin": payload("d", 1000),
}


def files_at(path: str) -> dict[str, bytes]:
    root = Path(path)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in iter_files(root)}


def staged(cluster: Any, token: str, *args: str) -> dict[str, Any]:
    proc = cluster.cli("stage", *args, "--node", "a", "--wait", "--json", token=token)
    assert proc.returncode == 0, proc.stderr + cluster.logs()
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_a_filtered_subset_under_a_labelled_prefix(start_cluster, s3_client, bucket: str) -> None:
    put_objects(s3_client, bucket, {f"mini/{k}": v for k, v in FILES.items()})
    put_objects(s3_client, bucket, {"mini/.classification": b"public\n"})
    cluster = start_cluster({"a": None})
    alice = cluster.token("alice", "scientist", "vision")
    source = f"s3://{bucket}/mini/val"

    # The label is one folder above the prefix: it applies.
    subset = staged(cluster, alice, source, "--exclude", "*.tmp")
    assert subset["state"] == "ready", dump(subset)
    assert files_at(subset["nodes"][0]["path"]) == {
        "a.bin": FILES["val/a.bin"],
        "deep/b.bin": FILES["val/deep/b.bin"],
    }
    # READY says which source and which part of it, as the embedded staging's marker does.
    ready = json.loads((state_dir_of(Path(subset["nodes"][0]["path"])) / "READY").read_bytes())
    assert (ready["source_identity"], ready["include"], ready["exclude"]) == (source, [], ["*.tmp"])

    # The same files again are a cache hit; another filter is another dataset.
    again = staged(cluster, alice, source, "--exclude", "/deep/*.tmp")
    assert again["digest"] == subset["digest"]
    assert again["nodes"][0]["path"] == subset["nodes"][0]["path"]
    deep = staged(cluster, alice, source, "--include", "deep/**")
    assert deep["digest"] != subset["digest"]
    assert files_at(deep["nodes"][0]["path"]) == {
        "deep/b.bin": FILES["val/deep/b.bin"],
        "deep/c.tmp": b"scratch",
    }

    # The worker applies the filters the ledger recorded: the API refuses what the type refuses.
    with cluster.http(alice) as http:
        bad = http.post("/v1/stagings", json={"source": source, "nodes": ["a"], "include": ["../**"]})
        assert bad.status_code == 400 and "'../**'" in bad.text, bad.text
        key = {"source": source, "nodes": ["a"], "idempotency_key": "k-1"}
        first = http.post("/v1/stagings", json={**key, "include": ["deep/**"]})
        assert first.status_code in (200, 202), first.text
        other = http.post("/v1/stagings", json={**key, "include": ["other/**"]})
        assert other.status_code == 409 and "filters" in other.text, other.text
    climbing = cluster.cli("stage", source, "--node", "a", "--include", "../x", token=alice)
    assert climbing.returncode == 2 and "above the source" in climbing.stderr


def test_a_denial_on_the_service_names_the_label_files_consulted(
    start_cluster, s3_client, bucket: str
) -> None:
    put_objects(s3_client, bucket, {f"mini/{k}": v for k, v in FILES.items()})
    put_objects(s3_client, bucket, {"mini/val/.classification": b"confidential\n"})
    cluster = start_cluster({"a": None})
    bob = cluster.token("bob", "scientist", "vision")

    proc = cluster.cli("stage", f"s3://{bucket}/mini/val/deep", "--node", "a", "--wait", token=bob)

    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "b.bin is confidential" in proc.stderr
    assert f"s3://{bucket}/mini/val/.classification (confidential)" in proc.stderr
    assert f"s3://{bucket}/mini/.classification (none)" in proc.stderr
    assert not list((cluster.roots["a"] / "datasets").iterdir())


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)


def test_a_label_above_the_requesters_root_is_never_consulted(start_cluster, tmp_path: Path) -> None:
    homes = tmp_path / "home"
    make_tree(homes / "alice" / "ds", FILES)
    # Above alice's root, a permissive label someone else controls: it must not label her data.
    (homes / ".classification").write_bytes(b"public\n")
    (tmp_path / ".classification").write_bytes(b"public\n")
    # The source's labels change between identical requests here: no fresh plan is followed
    # (within STAGEGATE_PLAN_FRESH_SECONDS a same request would reuse the first, denied, plan).
    env = {"STAGEGATE_SOURCE_ROOTS": f"{homes}/{{user}}", "STAGEGATE_PLAN_FRESH_SECONDS": "0"}
    cluster = start_cluster({"a": None}, env=env)
    alice = cluster.token("alice", "scientist", "vision")
    source = str(homes / "alice" / "ds" / "val")

    denied = cluster.cli("stage", source, "--node", "a", "--wait", token=alice)
    assert denied.returncode == 3, denied.stdout + denied.stderr + cluster.logs()
    assert "is unclassified" in denied.stderr
    assert f"{homes}/alice/ds/.classification (none)" in denied.stderr
    assert f"{homes}/alice/.classification (none)" in denied.stderr
    assert f"{homes}/.classification" not in denied.stderr
    assert not list((cluster.roots["a"] / "datasets").iterdir())

    # Inside her root, a label above the source counts, and so do her filters.
    (homes / "alice" / "ds" / ".classification").write_bytes(b"public\n")
    subset = staged(cluster, alice, source, "--include", "deep/*.bin")
    assert subset["state"] == "ready", dump(subset)
    assert files_at(subset["nodes"][0]["path"]) == {"deep/b.bin": FILES["val/deep/b.bin"]}

    # A label file above that is a symlink (to a permissive one elsewhere) is refused, not followed.
    (homes / "alice" / "ds" / ".classification").unlink()
    (homes / "alice" / "ds" / ".classification").symlink_to(homes / ".classification")
    linked = cluster.cli("stage", source, "--node", "a", "--wait", token=alice)
    assert linked.returncode != 0, linked.stdout
    assert "symlink" in linked.stdout + linked.stderr, linked.stdout + linked.stderr
