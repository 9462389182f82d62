"""A service staging reads a local path only within the requester's own source roots.

The worker reads with its own rights (here: root), so without confinement any user could have
it copy any directory it can read, another user's mode-0700 home included, into the node cache.
"""

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from integration.service.cluster import audit_actions, dump, iter_files

pytestmark = pytest.mark.integration

FILES = {"a.bin": b"A" * 3000, "sub/b.bin": b"B" * 5000}


def make_dataset(root: Path, files: dict[str, bytes], mode: int = 0o755) -> Path:
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    (root / ".classification").write_text("public\n")
    root.chmod(mode)
    return root


def submit(cluster: Any, token: str, source: str) -> tuple[int, dict[str, Any]]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
        return response.status_code, response.json()


def cached(cluster: Any) -> list[Path]:
    return sorted((cluster.roots["a"] / "datasets").iterdir())


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    make_dataset(home / "alice" / "ds", FILES)
    (home / "alice").chmod(0o755)
    secret = make_dataset(home / "bob" / "secret", {"diary.txt": b"bob's own words\n"})
    (home / "bob").chmod(0o700)  # bob's home: nobody else may read it
    assert secret.is_dir()
    return home


def test_local_sources_only_under_the_requesters_own_root(start_cluster, homes: Path) -> None:
    cluster = start_cluster({"a": None}, env={"STAGEGATE_SOURCE_ROOTS": f"{homes}/{{user}}"})
    alice = cluster.token("alice", "scientist", "vision")

    # Another user's mode-0700 directory: refused at submit, naming only alice's own root.
    for source in (str(homes / "bob" / "secret"), (homes / "bob" / "secret").as_uri()):
        status, body = submit(cluster, alice, source)
        assert status == 403, dump(body)
        assert f"{homes}/alice" in body["detail"] and "bob" not in body["detail"], body
    # Spelled to escape after the check: refused as bad input, not normalised.
    status, body = submit(cluster, alice, f"{homes}/alice/../bob/secret")
    assert status == 400, dump(body)
    # Other fsspec schemes the worker could read local files (or anything) through.
    for source in (f"zip://diary.txt::file://{homes}/bob/s.zip", "memory://x", "simplecache::s3://b/k"):
        status, body = submit(cluster, alice, source)
        assert status == 403, (source, dump(body))
    # (local:///path is refused either way: its URL does not survive redaction unchanged.)
    status, body = submit(cluster, alice, f"local://{homes}/bob/secret")
    assert status in (400, 403), dump(body)
    assert cached(cluster) == []

    # Her own directory stages as before.
    status, body = submit(cluster, alice, str(homes / "alice" / "ds"))
    assert status == 202, dump(body)
    final = cluster.wait_terminal(alice, body["id"])
    assert final["state"] == "ready", dump(final) + cluster.logs()
    path = Path(final["nodes"][0]["path"])
    got = {p.relative_to(path).as_posix(): p.read_bytes() for p in iter_files(path)}
    assert got == FILES


def test_no_local_source_at_all_unless_the_operator_configures_roots(start_cluster, homes: Path) -> None:
    cluster = start_cluster({"a": None})
    alice = cluster.token("alice", "scientist", "vision")
    status, body = submit(cluster, alice, str(homes / "alice" / "ds"))
    assert status == 403, dump(body)
    assert "STAGEGATE_SOURCE_ROOTS" in body["detail"]
    assert cached(cluster) == []


@pytest.mark.parametrize("link", ["whole", "component"])
def test_a_symlink_under_the_root_cannot_redirect_the_worker(start_cluster, homes: Path, link: str) -> None:
    """The text passes the API's check; the worker, walking the path without following links,
    refuses it before reading a byte of bob's."""
    cluster = start_cluster({"a": None}, env={"STAGEGATE_SOURCE_ROOTS": f"{homes}/{{user}}"})
    alice = cluster.token("alice", "scientist", "vision")
    if link == "whole":
        os.symlink(homes / "bob" / "secret", homes / "alice" / "innocent")
        source = str(homes / "alice" / "innocent")
    else:
        os.symlink(homes / "bob", homes / "alice" / "shared")
        source = str(homes / "alice" / "shared" / "secret")

    status, body = submit(cluster, alice, source)
    staging_id = body["id"] if status == 202 else body["detail"]["staging"]["id"]
    final = cluster.wait_terminal(alice, staging_id)

    assert final["state"] == "failed", dump(final)
    assert "symbolic link" in " ".join(final["errors"]), dump(final)
    assert "stage.failed" in audit_actions(cluster.ledger, staging_id)
    digest = hashlib.sha256(b"bob's own words\n").hexdigest()
    for dataset in cached(cluster):
        for path in iter_files(dataset):
            assert hashlib.sha256(path.read_bytes()).hexdigest() != digest, path
