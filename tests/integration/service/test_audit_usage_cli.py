"""An auditor's machine: STAGEGATE_URL and an auditor's token set, no database of its own.
`audit query`, `audit export`, `audit verify` and `usage` answer from the service's trail, not
from an empty local ledger (they used to, silently); `--local` still reads the local one."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, payload
from stagegate.ledger import AuditTrail
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.signed_note import SignerKey

pytestmark = pytest.mark.integration


def auditor_machine(cluster: Any, home: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in cluster.env.items() if k != "STAGEGATE_DATABASE_URL"}
    return {**env, "STAGEGATE_HOME": str(home), "STAGEGATE_URL": cluster.api_url, "STAGEGATE_TOKEN": token}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_audit_and_usage_read_the_services_trail(start_cluster, dataset, tmp_path: Path) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("aud", {f"f{i}.bin": payload(f"aud{i}", 20_000) for i in range(3)})
    scientist = cluster.token("gina", "scientist", "nlp")
    staged = cluster.cli(
        "stage", source, "--node", "a", "--job", "run-9", "--wait", "--json", token=scientist
    )
    assert staged.returncode == 0, staged.stderr + cluster.logs()
    env = auditor_machine(cluster, tmp_path / "auditor-home", cluster.token("ada", "auditor"))

    query = run(env, "audit", "query", "--actor", "gina", "--json")
    assert query.returncode == 0, query.stderr
    actions = [json.loads(line)["action"] for line in query.stdout.splitlines()]
    assert "stage.requested" in actions and "stage.completed" in actions

    exported = run(env, "audit", "export", "--job", "run-9")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines and all(len(e["hash"]) == 64 for e in lines)
    assert {e["job_ref"] for e in lines} == {"run-9"}

    verified = run(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout and cluster.api_url in verified.stdout

    usage = run(env, "usage", "--period", "all", "--json")
    assert usage.returncode == 0, usage.stderr
    rows = {r["key"]: r for r in json.loads(usage.stdout)}
    assert rows["gina"]["stagings"] == 1 and rows["gina"]["bytes_from_source"] == 60_000

    local = run(env, "audit", "query", "--actor", "gina", "--local")
    assert local.returncode == 0 and local.stdout == "", local.stdout + local.stderr


def test_a_scientist_is_refused_the_trail_and_usage(start_cluster, tmp_path: Path) -> None:
    cluster = start_cluster({"a": None})
    env = auditor_machine(cluster, tmp_path / "home", cluster.token("gina", "scientist", "nlp"))
    for args in (("audit", "query"), ("usage",)):
        refused = run(env, *args)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr


def test_head_checkpoint_and_verify_head_ask_the_service(start_cluster, dataset, tmp_path: Path) -> None:
    """`audit head` and `audit checkpoint` read the service's trail too (they read the empty
    local ledger, silently); `audit verify --head` is checked by the service; the commands only
    the ledger can answer refuse a set server unless --local."""
    cluster = start_cluster({"a": None})
    source = dataset("hd", {"f.bin": payload("hd", 10_000)})
    staged = cluster.cli("stage", source, "--node", "a", "--wait", token=cluster.token("gina", "scientist"))
    assert staged.returncode == 0, staged.stderr + cluster.logs()
    env = auditor_machine(cluster, tmp_path / "auditor-home", cluster.token("ada", "auditor"))
    service_head = AuditTrail(cluster.ledger).head()
    assert service_head is not None and service_head[0] >= 3

    head = run(env, "audit", "head")
    assert head.returncode == 0, head.stderr
    assert head.stdout.strip() == f"{service_head[0]}:{service_head[1]}"
    local = run(env, "audit", "head", "--local")
    assert local.returncode == 0 and local.stdout.strip() == "0:" + "0" * 64, local.stdout + local.stderr

    kept = run(env, "audit", "verify", "--head", head.stdout.strip())
    assert kept.returncode == 0 and "intact" in kept.stdout, kept.stdout + kept.stderr
    forged = f"{service_head[0]}:{'f' * 64}"  # a head the trail never had: as if rows were rewritten
    mismatch = run(env, "audit", "verify", "--head", forged)
    assert mismatch.returncode == 4, mismatch.stdout + mismatch.stderr
    assert "head mismatch" in mismatch.stderr and cluster.api_url in mismatch.stderr
    bad = run(env, "audit", "verify", "--head", "12:nothex")
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr, bad.stderr

    none_yet = run(env, "audit", "checkpoint")
    assert none_yet.returncode == 2 and cluster.api_url in none_yet.stderr, none_yet.stderr
    key = SignerKey.generate("test.example/audit")
    signed = Checkpoints(cluster.ledger, origin=key.name, signer=lambda: key).sign()
    shown = run(env, "audit", "checkpoint")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == signed.note
    assert run(env, "audit", "checkpoint", "--new").returncode == 2

    for ledger_only in (("audit", "prove", "1"), ("audit", "key")):
        refused = run(env, *ledger_only)
        assert refused.returncode == 2 and "--local" in refused.stderr, refused.stdout + refused.stderr


def test_a_scientist_is_refused_the_head(start_cluster, tmp_path: Path) -> None:
    cluster = start_cluster({"a": None})
    env = auditor_machine(cluster, tmp_path / "home", cluster.token("gina", "scientist", "nlp"))
    refused = run(env, "audit", "head")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stdout == ""
