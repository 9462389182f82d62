"""An auditor's machine: STAGEGATE_URL and an auditor's token set, no database of its own.
`audit query`, `audit export`, `audit verify` and `usage` answer from the service's trail, not
from an empty local ledger (they used to, silently); `--local` still reads the local one."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, payload

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
