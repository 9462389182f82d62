"""``stagegate usage``, run as a real subprocess over a SQLite ledger in $STAGEGATE_HOME."""

import csv
import io
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from integration.helpers import STAGEGATE
from integration.ledger.test_usage import GB, HOUR, complete, egress, embedded_staging, service_staging
from stagegate.ledger import AuditTrail, Principal, StagingRequests, open_ledger
from stagegate.ledger.settings import DATABASE_URL_ENV, SQLITE_FILE

pytestmark = pytest.mark.integration

ALICE = Principal("alice", "scientist", "vision", "t-alice")
BOB = Principal("bob", "job", "nlp", "t-bob")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # STAGEGATE_HOME (this test's own, from tests/conftest.py) is inherited; the database URL is not.
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    return subprocess.run([STAGEGATE, "usage", *args], capture_output=True, text=True, timeout=60, env=env)


def ok(*args: str) -> str:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def history(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """alice stages 2 nodes x 3 GB and releases it, and egresses 0.5 GB; bob stages 1 GB
    embedded. Returns alice's pinned hours, read back from the stored event times."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    with open_ledger() as ledger:
        assert ledger.dialect == "sqlite"
        assert ledger.engine.url.database is not None
        assert ledger.engine.url.database.endswith(f"{os.environ['STAGEGATE_HOME']}/{SQLITE_FILE}")
        job = service_staging(ledger, ALICE, "imagenet", {"a": 3 * GB, "b": 3 * GB})
        complete(ledger, job, ["a", "b"])
        StagingRequests(ledger).release(ALICE, job)
        embedded_staging(ledger, "bob", GB)
        egress(ledger, ALICE, 500_000_000)
        trail = AuditTrail(ledger)
        (allowed,) = trail.query(job=job, action="policy.allowed")
        (released,) = trail.query(job=job, action="stage.released")
    return {"hours": (released.time - allowed.time) / HOUR, "released": released.time.timestamp()}


def test_json_by_user(history: dict[str, float]) -> None:
    rows = json.loads(ok("--json", "--period", "all"))
    assert [r["key"] for r in rows] == ["alice", "bob"]
    alice, bob = rows
    assert alice["nvme_gb_hours"] == pytest.approx(2 * 3.0 * history["hours"], rel=1e-9)  # 2 nodes x 3 GB
    assert {k: v for k, v in alice.items() if k != "nvme_gb_hours"} == {
        "period": "all",
        "key": "alice",
        "bytes_from_source": 6 * GB,
        "bytes_from_peers": 0,
        "bytes_from_cache": 0,
        "bytes_egressed": 500_000_000,
        "stagings": 1,
        "egresses": 1,
    }
    assert bob == {
        "period": "all",
        "key": "bob",
        "bytes_from_source": GB,
        "bytes_from_peers": 0,
        "bytes_from_cache": 0,
        "bytes_egressed": 0,
        "nvme_gb_hours": 0.0,  # embedded stagings pin nothing
        "stagings": 1,
        "egresses": 0,
    }


def test_csv_by_project(history: dict[str, float]) -> None:
    month = f"{datetime.fromtimestamp(history['released'], UTC):%Y-%m}"
    text = ok("--csv", "--by", "project")
    assert text.splitlines()[0] == (
        "period,key,bytes_from_source,bytes_from_peers,bytes_from_cache,bytes_egressed,nvme_gb_hours,stagings,egresses"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["period"], r["key"], r["bytes_from_source"], r["stagings"]) for r in rows] == [
        (month, "(none)", str(GB), "1"),  # the embedded staging's job has no project
        (month, "vision", str(6 * GB), "1"),
    ]
    assert float(rows[1]["nvme_gb_hours"]) == pytest.approx(6.0 * history["hours"], rel=1e-9)


def test_table_and_windows(history: dict[str, float]) -> None:
    table = ok().splitlines()
    assert table[0].split() == [
        "PERIOD",
        "USER",
        "FROM",
        "SOURCE",
        "FROM",
        "PEERS",
        "FROM",
        "CACHE",
        "EGRESSED",
        "NVME",
        "GB-H",
        "STAGINGS",
        "EGRESSES",
    ]
    assert table[1].split()[1:9] == ["alice", "6.0", "GB", "0", "B", "0", "B", "500.0"]
    # Times without a zone are UTC; a window after everything is empty.
    after = datetime.fromtimestamp(history["released"], UTC) + timedelta(days=1)
    assert json.loads(ok("--json", "--since", f"{after:%Y-%m-%d}")) == []
    assert ok("--since", f"{after:%Y-%m-%d}").strip() == "no usage in this window"


def test_bad_input_exits_2() -> None:
    for args in (["--json", "--csv"], ["--since", "yesterday"], ["--by", "team"], ["--period", "week"]):
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = run("--since", "2026-11-02", "--until", "2026-11-01")
    assert proc.returncode == 2
    assert "since must be before until" in proc.stderr
