"""`stagegate audit verify` itself, on each backend: exit 0 when intact, 4 naming the row when
a superuser edited or deleted one (the database's own refusal bypassed, as tamper() does)."""

import os
import subprocess

from integration.helpers import STAGEGATE
from integration.ledger.helpers import tamper
from stagegate.ledger import AuditTrail, NewEvent, open_ledger


def _verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STAGEGATE_DATABASE_URL": url}
    return subprocess.run(
        [STAGEGATE, "audit", "verify", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _append(url: str, count: int) -> None:
    with open_ledger(url) as ledger:
        trail = AuditTrail(ledger)
        for n in range(count):
            trail.append(
                NewEvent(actor="alice", role="local", action="stage.completed", bytes=100 + n, files=1)
            )


def test_intact_chain_exits_0(ledger_url: str) -> None:
    _append(ledger_url, 5)
    result = _verify(ledger_url)
    assert result.returncode == 0, result.stderr
    assert "intact: 5 events" in result.stdout


def test_an_edited_row_exits_4_naming_it(ledger_url: str) -> None:
    _append(ledger_url, 5)
    tamper(ledger_url, "UPDATE audit_events SET bytes = 999999 WHERE seq = 3")
    result = _verify(ledger_url)
    assert result.returncode == 4
    assert "altered row at seq 3" in result.stderr


def test_a_deleted_row_exits_4_naming_it(ledger_url: str) -> None:
    _append(ledger_url, 5)
    tamper(ledger_url, "DELETE FROM audit_events WHERE seq = 2")
    result = _verify(ledger_url)
    assert result.returncode == 4
    assert "missing row at seq 2" in result.stderr
