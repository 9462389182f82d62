"""Who may do what: every endpoint against every kind of caller, and stagings kept private."""

import logging
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from stagegate.confinement import SourceRules
from stagegate.ledger import AuditTrail, StagingViews, Tokens
from stagegate.ledger.egresses import Egresses
from stagegate.requests import EgressRequest

from .conftest import UNKNOWN_TOKEN, USERS, World, open_world

pytestmark = pytest.mark.integration

CALLERS = ("none", "bad", "job", "scientist", "steward", "auditor", "admin")
# (method, path) -> expected status per caller, in CALLERS order. "{sams}" is a staging (or an
# egress) the scientist (sam) owns; the job user is someone else to it.
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/v1/stagings"): (401, 401, 202, 202, 403, 403, 202),
    ("GET", "/v1/stagings"): (401, 401, 200, 200, 200, 200, 200),
    ("GET", "/v1/stagings/{sams}"): (401, 401, 404, 200, 404, 200, 200),
    ("DELETE", "/v1/stagings/{sams}"): (401, 401, 404, 200, 403, 403, 200),
    # Renewing a pin lease: as releasing, the owner or an admin; someone else's is not found.
    ("POST", "/v1/stagings/{sams}/renew"): (401, 401, 404, 200, 403, 403, 200),
    ("GET", "/v1/nodes"): (401, 401, 200, 200, 200, 200, 200),
    # Tokens: everyone lists their own (an admin all); only the owner or an admin revokes one.
    ("GET", "/v1/tokens"): (401, 401, 200, 200, 200, 200, 200),
    ("DELETE", "/v1/tokens/{sams}"): (401, 401, 404, 200, 404, 404, 200),
    ("GET", "/v1/audit"): (401, 401, 403, 403, 403, 200, 200),
    ("GET", "/v1/audit/verify"): (401, 401, 403, 403, 403, 200, 200),
    ("GET", "/v1/audit/head"): (401, 401, 403, 403, 403, 200, 200),
    ("GET", "/v1/audit/checkpoint"): (401, 401, 403, 403, 403, 200, 200),
    ("GET", "/healthz"): (200, 200, 200, 200, 200, 200, 200),
    ("GET", "/readyz"): (200, 200, 200, 200, 200, 200, 200),
    # Egress: submitters only; a local destination is taken exactly as written (no '.', '..'
    # or empty segment; the node's worker further confines it to the user's egress root).
    ("POST", "/v1/egress"): (401, 401, 202, 202, 403, 403, 202),
    ("POST", "/v1/egress to /out/../etc"): (401, 401, 400, 400, 403, 403, 400),
    ("GET", "/v1/egress/{sams}"): (401, 401, 404, 200, 200, 200, 200),
    # Local sources: only under the caller's own source root (here /srv/home/{user}); the worker
    # reads with its own rights, so nobody, admin included, has it read another user's home.
    ("POST", "/v1/stagings from your own home"): (401, 401, 202, 202, 403, 403, 202),
    ("POST", "/v1/stagings from bob's home"): (401, 401, 403, 403, 403, 403, 403),
    ("POST", "/v1/stagings from outside every root"): (401, 401, 403, 403, 403, 403, 403),
    # Lowering a label is a steward's (or admin's) act, never the requester's own.
    ("POST", "/v1/declassifications"): (401, 401, 403, 403, 201, 403, 201),
}
CASES = [
    pytest.param(method, path, caller, codes[i], id=f"{method} {path} as {caller}")
    for (method, path), codes in MATRIX.items()
    for i, caller in enumerate(CALLERS)
]
EGRESS = {
    "run_dir": "/nvme/runs/sam/run-1",
    "node": "gpu-01",
    "destination": "s3://models/run-1",
    "latest": 1,
}
SOURCE_ROOTS = "/srv/home/{user}"
DECLASSIFICATION = {
    "node": "gpu-01",
    "run_dir": "/nvme/runs/sam/run-1",
    "checkpoint": "checkpoint-100",
    "label": "public",
    "reason": "reviewed: synthetic data only",
}


@pytest.fixture(scope="module")
def shared_world(pg_admin: sa.Engine) -> Iterator[World]:
    """One world for the whole matrix: each case makes the staging it needs."""
    with open_world(pg_admin, source_rules=SourceRules.parse(SOURCE_ROOTS)) as opened:
        yield opened


def local_source(path: str, caller: str) -> str:
    if path.endswith("your own home"):
        return f"/srv/home/{USERS.get(caller, 'nobody')}/dataset"
    if path.endswith("bob's home"):
        return f"/srv/home/{USERS['other']}/dataset"
    return "/etc/ssl/private"


@pytest.mark.parametrize(("method", "path", "caller", "expected"), CASES)
def test_role_matrix(shared_world: World, method: str, path: str, caller: str, expected: int) -> None:
    w = shared_world
    target = None
    egress_target = None
    token_target = None
    if path == "/v1/tokens/{sams}":
        token_target = Tokens(w.ledger).create(USERS["scientist"], "scientist", "vision")
        path = path.replace("{sams}", token_target.id)
    elif path == "/v1/egress/{sams}":
        egress_target, _ = Egresses(w.ledger).submit(w.principals["scientist"], EgressRequest(**EGRESS))
        path = path.replace("{sams}", egress_target.id)
    elif "{sams}" in path:
        target = w.staging_of("scientist")
        path = path.replace("{sams}", target.id)
    if method == "POST" and path.startswith("/v1/egress"):
        body = {**EGRESS, "destination": "/out/../etc"} if path.endswith("/etc") else EGRESS
        response = w.client.post("/v1/egress", json=body, headers=w.headers(caller))
    elif method == "POST" and path == "/v1/declassifications":
        response = w.client.post(path, json=DECLASSIFICATION, headers=w.headers(caller))
    elif method == "POST" and " from " in path:
        response = w.post(caller, source=local_source(path, caller))
    elif method == "POST" and path.endswith("/renew"):
        response = w.client.post(path, json={"pin_ttl_seconds": 7200}, headers=w.headers(caller))
    elif method == "POST":
        response = w.post(caller)
    else:
        response = w.client.request(method, path, headers=w.headers(caller))

    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "stagegate token create" in response.json()["detail"]
    if expected == 403:
        detail = response.json()["detail"]
        if caller in ("steward", "auditor") or " from " not in path:
            assert "this token's role is" in detail
        else:  # a submitter refused the source: says why, names only the caller's own root
            assert "local paths" in detail and f"/srv/home/{USERS[caller]}" in detail
            assert USERS["other"] not in detail.replace(f"/srv/home/{USERS['other']}/dataset", "")
    if expected == 400:
        assert "segment" in response.json()["detail"]
    if egress_target is not None and expected == 200:
        assert response.json()["user"] == USERS["scientist"]
    if path == "/v1/declassifications":
        made = [
            e for e in AuditTrail(w.ledger).query(action="label.declassified") if e.actor == USERS[caller]
        ]
        assert len(made) == (1 if expected == 201 else 0)
        if made:
            assert made[0].role == caller and made[0].details["to"] == "public"
    if token_target is not None:
        still = Tokens(w.ledger).authenticate(token_target.token)
        assert (still is None) == (expected == 200), "revoked exactly when the answer says so"
    if target is not None:
        after = StagingViews(w.ledger).view(target.id)
        released = method == "DELETE" and expected == 200
        assert after.state == ("released" if released else "pending")
        if released:
            assert response.json()["state"] == "released"
        if path.endswith("/renew"):
            renewals = [
                e.details["by"] for e in AuditTrail(w.ledger).query(job=target.id, action="stage.renewed")
            ]
            assert renewals == ([USERS[caller]] if expected == 200 else [])
            if expected == 200:
                assert response.json()["pin"]["ttl_seconds"] == 7200


def test_401_says_how_to_get_a_token(world: World) -> None:
    issued = Tokens(world.ledger).create(user="gone", role="scientist")
    Tokens(world.ledger).revoke(issued.id)
    attempts = {
        "no header": {},
        "unknown token": {"Authorization": f"Bearer {UNKNOWN_TOKEN}"},
        "not a stagegate token": {"Authorization": "Bearer hunter2"},
        "basic auth": {"Authorization": "Basic c2FtOnB3"},
        "bearer without token": {"Authorization": "Bearer"},
        "revoked token": {"Authorization": f"Bearer {issued.token}"},
    }
    for name, headers in attempts.items():
        response = world.client.get("/v1/stagings", headers=headers)
        assert response.status_code == 401, name
        assert response.headers["WWW-Authenticate"] == "Bearer", name
        detail = response.json()["detail"]
        assert "stagegate token create" in detail, name
        assert issued.token not in response.text and "hunter2" not in response.text, name


def test_others_stagings_are_not_found_not_forbidden(world: World) -> None:
    sams = world.post("scientist").json()["id"]
    missing = str(uuid.uuid4())
    for who in ("job", "other"):
        # Exactly as for a staging that does not exist: its existence does not leak.
        seen = world.get(who, f"/v1/stagings/{sams}")
        nothing = world.get(who, f"/v1/stagings/{missing}")
        assert (seen.status_code, nothing.status_code) == (404, 404)
        assert seen.json()["detail"] == nothing.json()["detail"].replace(missing, sams)
        assert world.delete(who, f"/v1/stagings/{sams}").status_code == 404
        assert world.get(who, "/v1/stagings").json() == {"stagings": []}
    assert world.get("scientist", f"/v1/stagings/{sams}").json()["state"] == "pending"


def test_auditor_reads_everything_and_changes_nothing(world: World) -> None:
    sams = world.post("scientist").json()["id"]
    jays = world.post("job", job="slurm-7").json()["id"]

    listed = world.get("auditor", "/v1/stagings").json()["stagings"]
    assert {s["id"] for s in listed} == {sams, jays}
    assert {s["user"] for s in listed} == {USERS["scientist"], USERS["job"]}
    assert world.get("auditor", f"/v1/stagings/{sams}").json()["user"] == USERS["scientist"]
    assert world.get("auditor", "/v1/nodes").status_code == 200

    refused = world.delete("auditor", f"/v1/stagings/{sams}")
    assert refused.status_code == 403
    assert "job or scientist or admin" in refused.json()["detail"]
    assert world.post("auditor").status_code == 403
    assert world.get("admin", f"/v1/stagings/{sams}").json()["state"] == "pending"
    assert len(world.get("admin", "/v1/stagings").json()["stagings"]) == 2
    assert [e.action for e in AuditTrail(world.ledger).query()] == ["stage.requested"] * 2


def test_owner_and_admin_release(world: World) -> None:
    sams = world.post("scientist").json()["id"]
    bobs = world.post("other").json()["id"]

    released = world.delete("admin", f"/v1/stagings/{sams}")
    assert released.status_code == 200
    assert released.json()["state"] == "released"
    again = world.delete("scientist", f"/v1/stagings/{sams}")  # releasing twice is harmless
    assert (again.status_code, again.json()["state"]) == (200, "released")

    assert world.delete("other", f"/v1/stagings/{bobs}").json()["state"] == "released"
    events = AuditTrail(world.ledger).query(action="stage.released")
    assert [(e.job_id, e.details["by"]) for e in events] == [(sams, "root"), (bobs, "bob")]


def test_list_filters_by_state(world: World) -> None:
    first = world.post("scientist").json()["id"]
    second = world.post("scientist").json()["id"]
    world.delete("scientist", f"/v1/stagings/{first}")

    assert [s["id"] for s in world.get("scientist", "/v1/stagings").json()["stagings"]] == [second, first]
    released = world.get("scientist", "/v1/stagings", state="released").json()["stagings"]
    assert [s["id"] for s in released] == [first]
    assert len(world.get("scientist", "/v1/stagings", limit=1).json()["stagings"]) == 1
    assert world.get("scientist", "/v1/stagings", state="lost").status_code == 400
    assert world.get("scientist", "/v1/stagings", limit=0).status_code == 400


def test_tokens_never_reach_the_log(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for who in ("job", "scientist", "auditor", "admin", "bad"):
        world.post(who)
        world.get(who, "/v1/stagings")
        world.get(who, "/v1/audit")
    world.client.get("/v1/nodes", headers={"Authorization": "Bearer sg_not-a-real-one"})
    logged = caplog.text
    for token in [*world.tokens.values(), UNKNOWN_TOKEN, "sg_not-a-real-one"]:
        assert token not in logged
