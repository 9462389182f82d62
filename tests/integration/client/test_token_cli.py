"""``stagegate token create`` against a real (SQLite) ledger: the token is printed once, and
the ledger recognises it afterwards."""

import subprocess

import pytest

from integration.helpers import STAGEGATE
from stagegate.ledger import Tokens, open_ledger

pytestmark = pytest.mark.integration


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=60)


def test_create_prints_the_token_once_and_the_ledger_knows_it():
    proc = run("token", "create", "--user", "alice", "--role", "scientist", "--project", "vision")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1  # only the token on stdout: TOKEN=$(stagegate token create ...) works
    token = lines[0]
    assert token.startswith("sg_")
    assert token not in proc.stderr
    assert "cannot be shown again" in proc.stderr
    assert "alice (role scientist, project vision)" in proc.stderr
    assert "STAGEGATE_DATABASE_URL is not set" in proc.stderr  # the conftest points at SQLite
    with open_ledger() as ledger:
        who = Tokens(ledger).authenticate(token)
    assert who is not None
    assert (who.user, who.role, who.project) == ("alice", "scientist", "vision")


def test_two_tokens_differ():
    first = run("token", "create", "--user", "bob", "--role", "job").stdout.strip()
    second = run("token", "create", "--user", "bob", "--role", "job").stdout.strip()
    assert first and second and first != second


def test_a_bad_role_is_refused():
    proc = run("token", "create", "--user", "alice", "--role", "root")
    assert proc.returncode == 2
    assert "'root' is not one of" in proc.stderr
    assert proc.stdout == ""


def test_a_bad_user_name_is_refused():
    proc = run("token", "create", "--user", " alice", "--role", "job")
    assert proc.returncode == 2
    assert "stagegate: error: user must be" in proc.stderr
    assert "Traceback" not in proc.stderr
