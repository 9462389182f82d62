"""``stagegate audit``, run as a real subprocess over the SQLite ledger real stagings wrote.

Tampering is done as someone with the database file would: open $STAGEGATE_HOME/ledger.db
with sqlite3, drop the triggers that refuse UPDATE/DELETE on audit_events, edit a row.
"""

import csv
import getpass
import io
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, assert_staged, payload, write_tree
from stagegate.ledger.chain import GENESIS_HASH, event_hash

pytestmark = pytest.mark.integration

FILES = {"a.txt": b"alpha", "sub/b.bin": payload("b", 5000)}
EVENTS_OK = ["stage.requested", "policy.allowed", "stage.completed"]
EVENTS_DENIED = ["stage.requested", "policy.denied"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # STAGEGATE_HOME (this test's own ledger) is inherited from the environment.
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=60)


def ok(*args: str) -> str:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def history(tmp_path: Path) -> dict[str, object]:
    """Two stagings through the CLI: one public dataset staged, one unlabelled one denied."""
    good = write_tree(tmp_path / "good", {**FILES, ".classification": b"public\n"})
    bad = write_tree(tmp_path / "bad", FILES)  # no label anywhere
    dest = tmp_path / "dest"
    ok("stage", str(good), "--to", str(dest), "--job", "run-ok", "--no-progress")
    assert_staged(dest, FILES)
    denied = run("stage", str(bad), "--to", str(tmp_path / "dest-denied"), "--job", "run-denied")
    assert denied.returncode == 3, denied.stderr
    assert not (tmp_path / "dest-denied").exists()
    return {"good": str(good), "bad": str(bad), "dest": str(dest)}


def ledger_file(home: str) -> Path:
    path = Path(home) / "ledger.db"
    assert path.is_file(), f"no SQLite ledger at {path}"
    return path


def tamper(home: str, statement: str) -> None:
    """Drop the append-only triggers on audit_events (as the file's owner can), then edit."""
    conn = sqlite3.connect(ledger_file(home))
    try:
        triggers = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
            )
        ]
        assert triggers, "audit_events has no triggers guarding it"
        with pytest.raises(sqlite3.DatabaseError), conn:  # the triggers refuse the edit
            conn.execute(statement)
        with conn:
            for name in triggers:
                conn.execute(f'DROP TRIGGER "{name}"')
            changed = conn.execute(statement).rowcount
        assert changed == 1, f"{statement!r} changed {changed} rows"
    finally:
        conn.close()


def test_query_filters_by_action_job_and_actor(history: dict[str, object]) -> None:
    everything = jsonl(ok("audit", "query", "--json"))
    assert [e["action"] for e in everything] == EVENTS_OK + EVENTS_DENIED
    assert [e["seq"] for e in everything] == [1, 2, 3, 4, 5]

    (denied,) = jsonl(ok("audit", "query", "--action", "policy.denied", "--json"))
    assert denied["job_ref"] == "run-denied"
    assert denied["decision"] == "deny"
    assert denied["source"] == history["bad"]
    reasons = denied["reasons"]
    assert isinstance(reasons, list) and len(reasons) == len(FILES)
    for key in FILES:
        assert any(r.startswith(f"{key} ") and "unclassified" in r for r in reasons), reasons

    by_ref = jsonl(ok("audit", "query", "--job", "run-ok", "--json"))
    assert [e["action"] for e in by_ref] == EVENTS_OK
    completed = by_ref[-1]
    assert (completed["files"], completed["bytes"]) == (len(FILES), sum(map(len, FILES.values())))
    assert completed["destination"] == history["dest"]
    job_id = completed["job_id"]
    assert isinstance(job_id, str)
    assert jsonl(ok("audit", "query", "--job", job_id, "--json")) == by_ref

    assert len(jsonl(ok("audit", "query", "--actor", getpass.getuser(), "--json"))) == 5
    assert ok("audit", "query", "--actor", "nobody-else") == ""
    assert ok("audit", "query", "--job", "no-such-job") == ""
    assert ok("audit", "query", "--since", "2999-01-01") == ""
    assert ok("audit", "query", "--until", "2000-01-01T00:00:00Z") == ""

    human = ok("audit", "query", "--job", "run-denied").splitlines()
    assert any("policy.denied" in line and "deny" in line and "job=run-denied" in line for line in human)
    assert any("a.txt" in line and "unclassified" in line for line in human)


def test_export_jsonl_and_csv_carry_the_hash_chain(history: dict[str, object]) -> None:
    lines = jsonl(ok("audit", "export", "--format", "jsonl"))
    assert [e["action"] for e in lines] == EVENTS_OK + EVENTS_DENIED
    previous = GENESIS_HASH
    for event in lines:
        assert event["prev_hash"] == previous
        fields = {k: v for k, v in event.items() if k != "hash"}
        assert event_hash(str(event["prev_hash"]), fields) == event["hash"], event["seq"]
        previous = str(event["hash"])

    rows = list(csv.DictReader(io.StringIO(ok("audit", "export", "--format", "csv"))))
    assert len(rows) == len(lines)
    for row, event in zip(rows, lines, strict=True):
        assert int(row["seq"]) == event["seq"]
        assert row["action"] == event["action"]
        assert (row["prev_hash"], row["hash"]) == (event["prev_hash"], event["hash"])
        assert json.loads(row["reasons"]) == event["reasons"]
    assert {r["job_ref"] for r in rows} == {"run-ok", "run-denied"}

    only_denied = jsonl(ok("audit", "export", "--format", "jsonl", "--action", "policy.denied"))
    assert [e["seq"] for e in only_denied] == [5]

    bad = run("audit", "export", "--format", "xml")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def test_head_and_verify_on_an_intact_chain(history: dict[str, object]) -> None:
    last = jsonl(ok("audit", "export", "--format", "jsonl"))[-1]
    head = ok("audit", "head").strip()
    assert head == f"{last['seq']}:{last['hash']}"
    verified = ok("audit", "verify")
    assert "intact" in verified and "5 events" in verified
    assert "5 events" in ok("audit", "verify", "--head", head)
    bad_head = run("audit", "verify", "--head", "not-a-head")
    assert bad_head.returncode == 2
    assert "Traceback" not in bad_head.stderr


def test_empty_trail_head_and_verify() -> None:
    assert ok("audit", "head").strip() == "0:" + "0" * 64
    assert "0 events" in ok("audit", "verify")


def test_altered_row_exits_4_naming_its_seq(history: dict[str, object], stagegate_home: str) -> None:
    tamper(stagegate_home, "UPDATE audit_events SET bytes = bytes + 1 WHERE seq = 2")
    proc = run("audit", "verify")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "TAMPERED" in proc.stderr
    assert "seq 2" in proc.stderr
    assert "altered" in proc.stderr


def test_altered_reasons_are_caught(history: dict[str, object], stagegate_home: str) -> None:
    # Rewriting why something was denied is tampering too.
    tamper(stagegate_home, "UPDATE audit_events SET reasons = '[]' WHERE seq = 5")
    proc = run("audit", "verify")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "seq 5" in proc.stderr


def test_deleted_middle_row_exits_4_naming_the_missing_seq(
    history: dict[str, object], stagegate_home: str
) -> None:
    tamper(stagegate_home, "DELETE FROM audit_events WHERE seq = 3")
    proc = run("audit", "verify")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "seq 3" in proc.stderr
    assert "missing" in proc.stderr


def test_deleted_last_row_is_caught_against_an_exported_head(
    history: dict[str, object], stagegate_home: str
) -> None:
    head = ok("audit", "head").strip()
    assert head.startswith("5:")
    tamper(stagegate_home, "DELETE FROM audit_events WHERE seq = 5")

    # Without an anchor, a chain cut at its end looks whole: that is why heads are exported.
    assert "4 events" in ok("audit", "verify")
    assert ok("audit", "head").strip().startswith("4:")

    proc = run("audit", "verify", "--head", head)
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "seq 5" in proc.stderr


def test_embedded_commands_sign_a_checkpoint_every_n_events(
    tmp_path: Path, stagegate_home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No service in embedded mode: a command that wrote the ledger signs when one is due, with
    # a key it makes under $STAGEGATE_HOME on first use.
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_EVENTS", "3")
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_SECONDS", "0")
    good = write_tree(tmp_path / "good", {**FILES, ".classification": b"public\n"})
    bad = write_tree(tmp_path / "bad", FILES)
    assert run("audit", "checkpoint").returncode != 0  # nothing signed yet
    ok("stage", str(good), "--to", str(tmp_path / "d1"), "--job", "one", "--no-progress")  # events 1-3
    key = Path(stagegate_home) / "checkpoint.key"
    assert key.stat().st_mode & 0o777 == 0o600
    first = ok("audit", "checkpoint")
    assert first.splitlines()[1] == "3"
    assert run("stage", str(bad), "--to", str(tmp_path / "d2"), "--job", "two").returncode == 3  # 4-5
    assert ok("audit", "checkpoint") == first  # two new events: not due yet
    ok("stage", str(good), "--to", str(tmp_path / "d3"), "--job", "three", "--no-progress")  # 6-8
    assert ok("audit", "checkpoint").splitlines()[1] == "8"
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(first)
    public = ok("audit", "key").strip()
    checked = ok("audit", "verify", "--checkpoint", str(kept), "--public-key", public)
    assert "the trail's 8 events extend the checkpoint of 3 events" in checked
