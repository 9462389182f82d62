"""The service signs checkpoints by itself: a node worker, after a reconcile pass, signs one once
``STAGEGATE_CHECKPOINT_EVENTS`` events (here 1) are unsigned, with the configured key, and publishes it to
the append-only file; the API shows it to an auditor, and an auditor holding only that file and
the public key proves the trail extends it."""

import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, payload
from integration.service.cluster import wait_for
from stagegate.ledger import AuditTrail
from stagegate.ledger.checkpoint_note import split_notes
from stagegate.ledger.signed_note import SignerKey

pytestmark = pytest.mark.integration

ORIGIN = "test.example/audit"


def test_workers_sign_and_publish_checkpoints_every_n_events(start_cluster, dataset, tmp_path: Path) -> None:
    key = SignerKey.generate(ORIGIN)
    key_file = tmp_path / "checkpoint.key"
    key_file.write_text(key.encode() + "\n")
    key_file.chmod(0o600)
    published = tmp_path / "published" / "checkpoints.log"
    published.parent.mkdir()
    cluster = start_cluster(
        {"a": None},
        env={
            "STAGEGATE_CHECKPOINT_ORIGIN": ORIGIN,
            "STAGEGATE_CHECKPOINT_KEY_FILE": str(key_file),
            "STAGEGATE_CHECKPOINT_PUBLISH": str(published),
            "STAGEGATE_CHECKPOINT_EVENTS": "1",
            "STAGEGATE_CHECKPOINT_SECONDS": "0",
        },
    )
    source = dataset("cp", {f"f{i}.bin": payload(f"cp{i}", 10_000) for i in range(2)})
    scientist = cluster.token("gina", "scientist")
    staged = cluster.cli("stage", source, "--node", "a", "--job", "run-cp", "--wait", token=scientist)
    assert staged.returncode == 0, staged.stderr + cluster.logs()
    head = AuditTrail(cluster.ledger).head()
    assert head is not None and head[0] >= 3

    def signed_up_to_head() -> list[str] | None:
        notes = split_notes(published.read_text()) if published.exists() else []
        return notes if notes and notes[-1].split("\n")[1] == str(head[0]) else None

    try:
        notes = wait_for("a published checkpoint of every event", signed_up_to_head, timeout=60, every=0.5)
    except AssertionError as exc:
        shown = published.read_text() if published.exists() else "(none)"
        raise AssertionError(f"{exc}\npublished:\n{shown}\n{cluster.logs()}") from None

    with cluster.http(cluster.token("ada", "auditor")) as http:
        body = http.get("/v1/audit/checkpoint", params={"verify": "true"}).json()
    assert body["checkpoint"]["note"] == notes[-1]
    assert body["checkpoint"]["key"] == f"{ORIGIN}+{key.id:08x}"
    assert body["checkpoint"]["signature_ok"] and body["consistent"] is True

    # The auditor's check: the published file and a public key they hold, against the ledger.
    auditor_env = {k: v for k, v in cluster.env.items() if k != "STAGEGATE_CHECKPOINT_KEY_FILE"}
    public_key = key.verifier().encode()
    checked = subprocess.run(
        [STAGEGATE, "audit", "verify", "--checkpoint", str(published), "--public-key", public_key],
        env=auditor_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    size = head[0]
    assert f"consistent: the trail's {size} events extend the checkpoint of {size} events" in checked.stdout
