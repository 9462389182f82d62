"""Discovery and admin commands against a real (SQLite) ledger, as a user runs them: token list
and revoke, list of my stagings, --quiet, and shell completion."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, write_tree
from stagegate.ledger import Tokens, open_ledger

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("STAGEGATE_URL", None)
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=60, env=full)


def test_token_list_shows_no_secret_and_revoke_ends_a_token() -> None:
    made = [run("token", "create", "--user", u, "--role", "scientist").stdout.strip() for u in ("ann", "ben")]
    listed = run("token", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == [
        "ID",
        "USER",
        "ROLE",
        "PROJECT",
        "CREATED",
        "LAST",
        "USED",
    ]
    assert "ann" in listed.stdout and "ben" in listed.stdout and "never" in listed.stdout
    for token in made:
        assert token not in listed.stdout and token[3:] not in listed.stdout

    tokens = json.loads(run("token", "list", "--json").stdout)["tokens"]
    anns = next(t["id"] for t in tokens if t["user"] == "ann")
    revoked = run("token", "revoke", anns)
    assert revoked.returncode == 0 and f"token {anns} of ann (scientist) revoked" in revoked.stdout
    with open_ledger() as ledger:
        assert Tokens(ledger).authenticate(made[0]) is None
        assert Tokens(ledger).authenticate(made[1]) is not None
    assert "ann" not in run("token", "list").stdout
    assert "ann" in run("token", "list", "--revoked").stdout
    again = run("token", "revoke", anns)
    assert again.returncode == 2 and "no active token" in again.stderr


def test_list_here_and_quiet_stage(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "ds", {"a.bin": b"a" * 100, ".classification": b"public\n"})
    quiet = run("stage", str(source), "--to", str(tmp_path / "out"), "--quiet")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", ""), quiet.stderr
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"a" * 100

    listed = run("list")  # no server: the stagings run here
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "SOURCE", "DIR", "AGE"]
    assert row.split()[1:4] == ["ready", str(source), str(tmp_path / "out")]
    assert json.loads(run("list", "--json", "--state", "failed").stdout) == {"stagings": []}

    both = run("stage", str(source), "--to", str(tmp_path / "out2"), "--quiet", "--json")
    assert both.returncode == 2 and "--quiet" in both.stderr
    # Quiet still says what went wrong.
    missing = run("stage", str(tmp_path / "nope"), "--to", str(tmp_path / "out3"), "-q")
    assert missing.returncode == 2 and missing.stdout == "" and missing.stderr.strip()


def test_shell_completion_as_documented() -> None:
    script = run(env={"_STAGEGATE_COMPLETE": "bash_source"})
    assert script.returncode == 0, script.stderr
    assert "_stagegate_completion" in script.stdout and "complete " in script.stdout
    words = run(env={"_STAGEGATE_COMPLETE": "bash_complete", "COMP_WORDS": "stagegate re", "COMP_CWORD": "1"})
    assert "plain,release" in words.stdout and "plain,renew" in words.stdout
    tokens = run(
        env={"_STAGEGATE_COMPLETE": "bash_complete", "COMP_WORDS": "stagegate token ", "COMP_CWORD": "2"}
    )
    assert {"plain,create", "plain,list", "plain,revoke"} <= set(tokens.stdout.split())
