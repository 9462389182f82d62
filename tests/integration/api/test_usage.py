"""GET /v1/usage: who may read it, what it answers, and bad parameters."""

import pytest

from stagegate.ledger import AuditTrail, Principal, StagingRequests

from ..ledger.test_usage import GB, HOUR, complete, egress, service_staging
from .conftest import World

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("caller", "expected"),
    [("none", 401), ("bad", 401), ("job", 403), ("scientist", 403), ("auditor", 200), ("admin", 200)],
)
def test_who_may_read_usage(world: World, caller: str, expected: int) -> None:
    response = world.get(caller, "/v1/usage")
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json() == {"rows": []}
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if expected == 403:
        assert "auditor or admin" in response.json()["detail"]


def test_usage_rows(world: World) -> None:
    sam: Principal = world.principals["scientist"]  # project "vision"
    job = service_staging(world.ledger, sam, "imagenet", {"gpu-01": 3 * GB, "gpu-02": 3 * GB})
    complete(world.ledger, job, ["gpu-01", "gpu-02"])
    StagingRequests(world.ledger).release(sam, job)
    egress(world.ledger, sam, 500_000_000)
    trail = AuditTrail(world.ledger)
    (allowed,) = trail.query(job=job, action="policy.allowed")
    (released,) = trail.query(job=job, action="stage.released")
    pinned_hours = (released.time - allowed.time) / HOUR

    response = world.get("auditor", "/v1/usage", by="user", period="all")
    assert response.status_code == 200, response.text
    (row,) = response.json()["rows"]
    gb_hours = row.pop("nvme_gb_hours")
    assert row == {
        "period": "all",
        "key": "sam",
        "bytes_from_source": 2 * 3 * GB,  # replicated on two nodes, copied to both
        "bytes_from_peers": 0,
        "bytes_from_cache": 0,
        "bytes_egressed": 500_000_000,
        "stagings": 1,
        "egresses": 1,
    }
    assert gb_hours == pytest.approx(2 * 3.0 * pinned_hours, rel=1e-9)  # 2 nodes x 3 GB x hours pinned

    by_project = world.get("admin", "/v1/usage", by="project").json()["rows"]
    assert [(r["key"], r["bytes_from_source"]) for r in by_project] == [("vision", 6 * GB)]
    assert by_project[0]["period"] == f"{released.time:%Y-%m}", "monthly by default"

    later = released.time + HOUR
    window = {"since": later.isoformat(), "until": (later + HOUR).isoformat()}
    assert world.get("auditor", "/v1/usage", **window).json() == {"rows": []}


def test_bad_parameters(world: World) -> None:
    # A value outside the documented choices is bad input (400, naming the parameter), as elsewhere.
    week = world.get("auditor", "/v1/usage", period="week")
    assert week.status_code == 400
    assert "period" in week.json()["detail"]
    team = world.get("auditor", "/v1/usage", by="team")
    assert team.status_code == 400
    assert "by" in team.json()["detail"]
    assert world.get("auditor", "/v1/usage", since="yesterday").status_code == 422
    naive = world.get("auditor", "/v1/usage", since="2026-11-01T00:00:00")
    assert naive.status_code == 400
    assert "timezone" in naive.json()["detail"]
    start = "2026-11-02T00:00:00+00:00"
    backwards = world.get("auditor", "/v1/usage", since=start, until="2026-11-01T00:00:00+00:00")
    assert backwards.status_code == 400
    assert "before until" in backwards.json()["detail"]
