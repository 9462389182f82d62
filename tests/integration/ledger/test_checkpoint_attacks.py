"""The auditor's path on each backend, as the CLI runs it: take a checkpoint, and later prove the
trail an append-only extension of it. Each attack is made as someone with every right on the
database would (the append-only triggers dropped first), and each is caught, exit 4, naming
what broke, by a checkpoint taken before it."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE
from integration.ledger.helpers import as_owner, drop_audit_triggers
from stagegate.ledger import AuditTrail, NewEvent, open_ledger
from stagegate.ledger.chain import event_hash

ORIGIN = "stagegate.local/audit"


@pytest.fixture
def env(ledger_url: str, tmp_path: Path) -> dict[str, str]:
    """The CLI pointed at this test's ledger, with a signing key of its own, and the ledger's
    append-only triggers dropped by the attacker before anything else happens."""
    with open_ledger(ledger_url):
        pass  # the schema, with its triggers
    drop_audit_triggers(ledger_url)
    base = {**os.environ, "STAGEGATE_DATABASE_URL": ledger_url}
    key_file = tmp_path / "checkpoint.key"
    made = subprocess.run(
        [STAGEGATE, "audit", "key", "--new", str(key_file)],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / "public.key").write_text(made.stdout)
    return {**base, "STAGEGATE_CHECKPOINT_KEY_FILE": str(key_file)}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, "audit", *args], env=env, capture_output=True, text=True, timeout=120)


def append(url: str, count: int, actor: str = "alice") -> None:
    with open_ledger(url) as ledger:
        trail = AuditTrail(ledger)
        for n in range(count):
            trail.append(
                NewEvent(actor=actor, role="local", action="stage.completed", bytes=100 + n, files=1)
            )


def take_checkpoint(env: dict[str, str], tmp_path: Path) -> Path:
    signed = run(env, "checkpoint", "--new")
    assert signed.returncode == 0, signed.stderr
    path = tmp_path / "kept.checkpoint"
    path.write_text(signed.stdout)
    return path


def verify(env: dict[str, str], checkpoint: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run(env, "verify", "--checkpoint", str(checkpoint), "--public-key", str(tmp_path / "public.key"))


def rewrite_from(url: str, seq: int, **changes: object) -> None:
    """Change event ``seq`` and recompute its hash and every hash after it: a chain that checks."""
    with open_ledger(url) as ledger:
        events = AuditTrail(ledger).query()
    prev = events[seq - 2].hash if seq > 1 else "0" * 64
    for event in events[seq - 1 :]:
        changed = replace(event, prev_hash=prev, **(changes if event.seq == seq else {}))  # type: ignore[arg-type]
        new_hash = event_hash(prev, changed.hashed_fields())
        as_owner(
            url,
            "UPDATE audit_events SET bytes = :b, prev_hash = :p, hash = :h WHERE seq = :s",
            {"b": changed.bytes, "p": prev, "h": new_hash, "s": event.seq},
        )
        prev = new_hash


def test_an_intact_trail_extends_the_checkpoint(ledger_url: str, env: dict[str, str], tmp_path: Path) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    append(ledger_url, 3)
    assert run(env, "checkpoint", "--new").returncode == 0
    result = verify(env, kept, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "consistent: the trail's 8 events extend the checkpoint of 5 events" in result.stdout
    assert "newest checkpoint (8 events) extends it" in result.stdout


def test_a_deleted_newest_event_is_caught(ledger_url: str, env: dict[str, str], tmp_path: Path) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    as_owner(ledger_url, "DELETE FROM audit_events WHERE seq = 5")
    assert run(env, "verify").returncode == 0  # the chain alone cannot see it
    result = verify(env, kept, tmp_path)
    assert result.returncode == 4
    assert (
        "missing row at seq 5: the checkpoint signed 5 events and the log now ends at seq 4" in result.stderr
    )


def test_an_edited_row_is_caught(ledger_url: str, env: dict[str, str], tmp_path: Path) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    as_owner(ledger_url, "UPDATE audit_events SET bytes = 999999 WHERE seq = 3")
    result = verify(env, kept, tmp_path)
    assert result.returncode == 4
    assert "altered row at seq 3" in result.stderr
    assert "rewritten: events 1 to 5 no longer hash to the root the checkpoint signed" in result.stderr


def test_a_rewrite_with_every_hash_recomputed_is_caught(
    ledger_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    rewrite_from(ledger_url, 3, bytes=1)
    assert run(env, "verify").returncode == 0  # the chain checks: every hash was recomputed
    result = verify(env, kept, tmp_path)
    assert result.returncode == 4
    assert "rewritten: events 1 to 5 no longer hash to the root the checkpoint signed" in result.stderr
    assert "seq 3 differs from the leaf stored when it was signed" in result.stderr


def test_a_rewrite_signed_afresh_is_caught(ledger_url: str, env: dict[str, str], tmp_path: Path) -> None:
    # The attacker rewrites, then wipes the tree and the checkpoints so that the service itself
    # signs the rewritten history with its real key. The auditor's older checkpoint still sees it.
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    rewrite_from(ledger_url, 2, bytes=7)
    as_owner(ledger_url, "DELETE FROM audit_tree_nodes")
    as_owner(ledger_url, "DELETE FROM audit_checkpoints")
    append(ledger_url, 2, actor="mallory")
    assert run(env, "checkpoint", "--new").returncode == 0
    assert run(env, "verify").returncode == 0
    result = verify(env, kept, tmp_path)
    assert result.returncode == 4
    assert "rewritten: events 1 to 5 no longer hash to the root the checkpoint signed" in result.stderr
    assert "newest checkpoint (7 events) is not an append-only extension of this one" in result.stderr


def test_a_deleted_event_replaced_by_a_new_one_is_caught(
    ledger_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    as_owner(ledger_url, "DELETE FROM audit_events WHERE seq = 5")
    append(ledger_url, 1, actor="mallory")  # seq 5 again, chained properly
    result = verify(env, kept, tmp_path)
    assert result.returncode == 4
    assert "rewritten: events 1 to 5" in result.stderr


def test_a_tampered_checkpoint_or_a_wrong_key_is_refused(
    ledger_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    append(ledger_url, 5)
    kept = take_checkpoint(env, tmp_path)
    forged = tmp_path / "forged.checkpoint"
    forged.write_text(kept.read_text().replace(f"{ORIGIN}\n5\n", f"{ORIGIN}\n4\n"))
    result = verify(env, forged, tmp_path)
    assert result.returncode == 4 and "does not verify: the note was altered" in result.stderr
    other = run(env, "key", "--new", str(tmp_path / "other.key")).stdout.strip()
    result = run(env, "verify", "--checkpoint", str(kept), "--public-key", other)
    assert result.returncode == 4 and "none of the keys given" in result.stderr


def test_a_proof_verifies_with_no_database(ledger_url: str, env: dict[str, str], tmp_path: Path) -> None:
    append(ledger_url, 9)
    take_checkpoint(env, tmp_path)
    proof = tmp_path / "event-4.json"
    made = run(env, "prove", "4", "--out", str(proof))
    assert made.returncode == 0, made.stderr
    # No ledger at all: an unreachable database and an empty home.
    if ledger_url.startswith("sqlite:///"):
        Path(ledger_url.removeprefix("sqlite:///")).unlink()
    offline = {
        **env,
        "STAGEGATE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "STAGEGATE_HOME": str(tmp_path / "empty-home"),
    }
    public_key = (tmp_path / "public.key").read_text().strip()
    checked = run(offline, "verify-proof", str(proof), "--public-key", public_key)
    assert checked.returncode == 0, checked.stderr
    assert "verified: event 4 (stage.completed by alice" in checked.stdout
    assert "checkpoint of 9 events" in checked.stdout
    assert not (tmp_path / "empty-home" / "ledger.db").exists()

    text = proof.read_text()
    for name, forged in {
        "edited event": text.replace('"bytes":103', '"bytes":104'),
        "edited signature": text.replace(
            '"checkpoint":"stagegate.local/audit\\n9\\n', '"checkpoint":"stagegate.local/audit\\n8\\n'
        ),
    }.items():
        assert forged != text, name
        bad = tmp_path / f"{name}.json"
        bad.write_text(forged)
        result = run(offline, "verify-proof", str(bad), "--public-key", public_key)
        assert result.returncode == 4, (name, result.stdout, result.stderr)
        assert result.stderr.startswith("TAMPERED: "), name
