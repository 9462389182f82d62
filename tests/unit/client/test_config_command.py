"""``stagegate config``: every setting, where it came from, and never a secret."""

import json
import os

import pytest
from click.testing import CliRunner

from stagegate.client.cli import cli
from stagegate.settings import PREFIX

PASSWORD = "pl4nted-db-pw"  # planted to prove it never appears
TOKEN = "sg_pl4nted-token"
PEER_SECRET = "pl4nted-peer-secret-0123456789"


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", f"postgresql+psycopg://owner:{PASSWORD}@db:5432/ledger")
    monkeypatch.setenv("STAGEGATE_BROKER_URL", f"redis://:{PASSWORD}@redis:6379/0")
    monkeypatch.setenv("STAGEGATE_TOKEN", TOKEN)
    monkeypatch.setenv("STAGEGATE_PEER_SECRET", PEER_SECRET)
    monkeypatch.setenv("STAGEGATE_LEASE_SECONDS", "30")


def test_text_output_names_each_setting_and_its_source_and_hides_secrets() -> None:
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and TOKEN not in result.output
    assert PEER_SECRET not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "postgresql+psycopg://owner:[redacted]@db:5432/ledger" in lines["STAGEGATE_DATABASE_URL"]
    assert (
        "30.0" in lines["STAGEGATE_LEASE_SECONDS"]
        and "[environment; API, worker]" in lines["STAGEGATE_LEASE_SECONDS"]
    )
    assert "[default; API]" in lines["STAGEGATE_DECISION_WAIT"]
    assert "[redacted]" in lines["STAGEGATE_TOKEN"]
    assert "[redacted]" in lines["STAGEGATE_PEER_SECRET"]


def test_json_output_hides_secrets() -> None:
    result = CliRunner().invoke(cli, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and TOKEN not in result.output
    assert PEER_SECRET not in result.output
    rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
    assert rows["STAGEGATE_BROKER_URL"] == {
        "name": "STAGEGATE_BROKER_URL",
        "value": "redis://:[redacted]@redis:6379/0",
        "source": "environment",
        "readers": ["API", "worker"],
    }
    assert rows["STAGEGATE_HOME"]["source"] == "default"


def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEGATE_SCRUB_INTERVAL", "weekly")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code != 0
    assert "STAGEGATE_SCRUB_INTERVAL" in str(result.exception)
