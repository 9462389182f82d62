"""A cached dataset that someone altered (as root could: mode put back, a file rewritten, its
mtime restored) is never handed to the next staging: the hit's check on the node finds it,
quarantines it (audited) and copies afresh, so the second user's job gets the right bytes."""

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from integration.service.cluster import audit_actions, dump, iter_files, wait_for
from stagegate.ledger import AuditTrail, CacheIntegrity
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

FILES = {f"part-{i}.bin": bytes([65 + i]) * (4000 + 100 * i) for i in range(4)}


def submit(cluster: Any, token: str, source: str) -> dict[str, Any]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body


def contents(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in iter_files(path)}


def tamper(path: Path, key: str, data: bytes) -> None:
    """Rewrite one file in place at the same size, as root would, putting its mode and mtime back."""
    target = path / key
    st = target.stat()
    path.chmod(0o755)
    target.chmod(0o644)
    with target.open("r+b") as f:
        f.write(data[: st.st_size].ljust(st.st_size, b"!"))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    target.chmod(stat.S_IMODE(st.st_mode))
    path.chmod(0o555)


def test_a_ready_dataset_is_sealed_read_only(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None})
    alice = cluster.token("alice", "scientist")
    final = cluster.wait_terminal(alice, submit(cluster, alice, dataset("sealed", FILES))["id"])
    assert final["state"] == "ready", dump(final) + cluster.logs()
    root = Path(final["nodes"][0]["path"])
    modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}
    assert {m for p, m in modes.items() if p.is_dir()} == {0o555}, modes
    assert {m for p, m in modes.items() if p.is_file()} == {0o444}, modes


def test_a_tampered_cache_hit_is_quarantined_and_copied_afresh(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None}, env={"STAGEGATE_SCRUB_RATE": "0"})
    source = dataset("poisoned", FILES)
    mallory, bob = cluster.token("mallory", "scientist"), cluster.token("bob", "job")
    first = cluster.wait_terminal(mallory, submit(cluster, mallory, source)["id"])
    assert first["state"] == "ready", dump(first) + cluster.logs()
    path = Path(first["nodes"][0]["path"])
    tamper(path, "part-2.bin", b"EVIL")
    assert contents(path) != FILES

    second = submit(cluster, bob, source)
    final = cluster.wait_terminal(bob, second["id"])

    assert final["state"] == "ready", dump(final) + cluster.logs()
    assert final["nodes"][0]["path"] == str(path)
    assert contents(path) == FILES, "bob's job gets the source's bytes, not mallory's"
    actions = audit_actions(cluster.ledger, second["id"])
    assert "dataset.quarantined" in actions and actions[-1] == "stage.completed", actions
    event = next(
        e for e in AuditTrail(cluster.ledger).query(job=second["id"]) if e.action == "dataset.quarantined"
    )
    assert event.details["node"] == "a" and event.details["mismatch"].startswith("fingerprint"), event
    assert "EVIL" not in str(event.details) + str(event.reasons)
    # The altered copy lies aside until mallory's staging lets go of it, then it is deleted.
    [quarantined] = CacheIntegrity(cluster.ledger).quarantined("a")
    assert Path(quarantined.path).is_dir() and "EVIL" in (Path(quarantined.path) / "part-2.bin").read_text()
    # Its state (the manifest that vouched for it) went aside with it; the fresh copy has its own.
    moved_state = Path(quarantined.path + ".state")
    assert (moved_state / "READY").is_file() and (state_dir_of(path) / "READY").is_file()
    with cluster.http(mallory) as http:
        assert http.delete(f"/v1/stagings/{first['id']}").status_code == 200
    wait_for("the quarantined copy deleted", lambda: not Path(quarantined.path).exists(), timeout=30)
    wait_for("its state deleted with it", lambda: not moved_state.exists(), timeout=30)
    wait_for("its ledger row gone", lambda: CacheIntegrity(cluster.ledger).quarantined("a") == [], timeout=30)


def test_the_scrub_finds_a_rewritten_file_and_quarantines_it(start_cluster, dataset) -> None:
    cluster = start_cluster(
        {"a": None}, env={"STAGEGATE_SCRUB_RATE": str(50 << 20), "STAGEGATE_SCRUB_INTERVAL": "1"}
    )
    source = dataset("scrubbed", FILES)
    alice = cluster.token("alice", "scientist")
    first = cluster.wait_terminal(alice, submit(cluster, alice, source)["id"])
    assert first["state"] == "ready", dump(first) + cluster.logs()
    path = Path(first["nodes"][0]["path"])
    tamper(path, "part-1.bin", b"EVIL")

    def quarantined() -> list[Any]:
        return [e for e in AuditTrail(cluster.ledger).query() if e.action == "dataset.quarantined"]

    [event] = wait_for("the scrub's quarantine", quarantined, timeout=60)
    assert event.details["found_by"] == "scrub" and "part-1.bin" in event.details["mismatch"], event
    # No hit finds it any more: the next staging copies afresh and gets the right bytes.
    again = cluster.wait_terminal(alice, submit(cluster, alice, source)["id"])
    assert again["state"] == "ready" and not again["nodes"][0]["cache_hit"], dump(again)
    assert contents(Path(again["nodes"][0]["path"])) == FILES
