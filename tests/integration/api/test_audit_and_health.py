"""The audit endpoints, the probes, the app built from the environment, and error hygiene."""

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from stagegate.api.app import create_app
from stagegate.errors import InvalidInputError
from stagegate.ledger import (
    BatchRange,
    Ledger,
    NodePortion,
    Nodes,
    StagingSteps,
    TaskKey,
    Tasks,
    Tokens,
    open_ledger,
)
from stagegate.ledger.chain import event_hash
from stagegate.ledger.database import create_ledger_engine
from stagegate.queues import Dispatcher, make_celery

from ..ledger.helpers import tamper
from .conftest import BROKER_URL, World, closed_port, flushed_redis, fresh_pg_database

pytestmark = pytest.mark.integration


# -- audit ---------------------------------------------------------------------------------


def test_audit_filters(world: World) -> None:
    before = datetime.now(UTC)
    sams = world.post("scientist", job="slurm-1").json()["id"]
    jays = world.post("job", job="slurm-2").json()["id"]
    world.delete("scientist", f"/v1/stagings/{sams}")

    def events(**params: object) -> list[dict[str, object]]:
        response = world.get("auditor", "/v1/audit", **params)
        assert response.status_code == 200, response.text
        return list(response.json()["events"])

    everything = events()
    assert [e["action"] for e in everything] == ["stage.requested", "stage.requested", "stage.released"]
    assert [e["seq"] for e in everything] == [1, 2, 3]
    assert [e["actor"] for e in events(actor="sam")] == ["sam", "sam"]
    assert [e["job_id"] for e in events(action="stage.requested")] == [sams, jays]
    assert events(action="policy.denied") == []
    assert [e["action"] for e in events(job=sams)] == ["stage.requested", "stage.released"]
    assert [e["job_id"] for e in events(job="slurm-2")] == [jays]  # a job reference works too
    assert len(events(since=before.isoformat())) == 3
    assert events(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    assert events(until=before.isoformat()) == []
    assert [e["seq"] for e in events(limit=2)] == [1, 2]
    assert world.get("admin", "/v1/audit", actor="jay").json()["events"][0]["job_ref"] == "slurm-2"

    # Each event as served is exactly what was hashed: anyone can recompute the chain.
    prev = "0" * 64
    for event in everything:
        fields = {k: v for k, v in event.items() if k != "hash"}
        assert event["prev_hash"] == prev
        assert event_hash(prev, fields) == event["hash"]
        prev = str(event["hash"])


def test_audit_bad_filters(world: World) -> None:
    naive = world.get("auditor", "/v1/audit", since="2024-01-01T00:00:00")
    assert naive.status_code == 400
    assert "timezone" in naive.json()["detail"]
    assert world.get("auditor", "/v1/audit", limit=0).status_code == 400
    assert world.get("auditor", "/v1/audit", limit="many").status_code == 422
    assert world.get("auditor", "/v1/audit", since="yesterday").status_code == 422


def test_audit_verify(world: World) -> None:
    assert world.get("auditor", "/v1/audit/verify").json() == {
        "ok": True,
        "checked": 0,
        "head": None,
        "problem": None,
    }
    for _ in range(3):
        world.post("scientist")
    last = world.get("auditor", "/v1/audit").json()["events"][-1]

    verdict = world.get("admin", "/v1/audit/verify").json()
    assert verdict == {"ok": True, "checked": 3, "head": f"3:{last['hash']}", "problem": None}

    tamper(
        world.ledger.engine.url.render_as_string(hide_password=False),
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
    )
    verdict = world.get("auditor", "/v1/audit/verify").json()
    assert verdict["ok"] is False
    assert verdict["checked"] == 1
    assert verdict["problem"].startswith("altered row at seq 2")


def test_audit_head_and_verify_against_a_kept_head(world: World) -> None:
    assert world.get("auditor", "/v1/audit/head").json() == {"head": None}
    for _ in range(2):
        world.post("scientist")
    last = world.get("auditor", "/v1/audit").json()["events"][-1]
    head = world.get("auditor", "/v1/audit/head").json()["head"]
    assert head == f"2:{last['hash']}"

    assert world.get("auditor", "/v1/audit/verify", head=head).json()["ok"] is True
    forged = world.get("auditor", "/v1/audit/verify", head=f"2:{'0' * 64}").json()
    assert forged["ok"] is False and forged["problem"].startswith("head mismatch")
    cut = world.get("auditor", "/v1/audit/verify", head=f"9:{last['hash']}").json()
    assert cut["ok"] is False and cut["problem"].startswith("missing row")
    refused = world.get("auditor", "/v1/audit/verify", head="2:not-a-hash")
    assert refused.status_code == 400 and "SEQ:HASH" in refused.json()["detail"]


# -- probes --------------------------------------------------------------------------------


def test_ready_with_the_ledger_and_redis_up(world: World) -> None:
    response = world.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"ledger": "ok", "broker": "ok"}}
    assert world.client.get("/healthz").json() == {"status": "ok"}


def test_not_ready_when_the_broker_is_down(world: World) -> None:
    port = closed_port()
    down = make_celery(f"redis://127.0.0.1:{port}/0")
    app = create_app(world.ledger, Dispatcher(down), decision_wait=0)
    try:
        with TestClient(app) as client:
            started = time.monotonic()
            response = client.get("/readyz")
            assert time.monotonic() - started < 20, "/readyz must not hang on a dead broker"
            assert response.status_code == 503
            assert response.json() == {
                "status": "unavailable",
                "checks": {"ledger": "ok", "broker": "unavailable"},
            }
            assert str(port) not in response.text
            assert client.get("/healthz").status_code == 200
    finally:
        down.close()


def test_not_ready_when_the_ledger_is_down(world: World) -> None:
    port = closed_port()
    engine = create_ledger_engine(f"postgresql+psycopg://postgres:pw-never-shown@127.0.0.1:{port}/gone")
    broken = Ledger(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
    app = create_app(broken, world.dispatcher, decision_wait=0)
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"ledger": "unavailable", "broker": "ok"}
        # Authenticated calls need the ledger too: 503 (worth retrying), with nothing leaked.
        nodes = client.get("/v1/nodes", headers=world.headers("scientist"))
        assert nodes.status_code == 503
        assert nodes.headers["Retry-After"] == "5"
        assert "pw-never-shown" not in nodes.text and str(port) not in nodes.text
        assert client.get("/healthz").status_code == 200
    engine.dispose()


# -- the app as `stagegate serve` builds it --------------------------------------------------


def test_create_app_from_the_environment(pg_admin: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_pg_database(pg_admin) as url, flushed_redis():
        name = sa.make_url(url).database
        with open_ledger(url) as ledger:
            token = Tokens(ledger).create(user="sam", role="scientist").token
            Nodes(ledger).heartbeat("gpu-01", "/nvme", 10**12, "worker-1")
        monkeypatch.setenv("STAGEGATE_DATABASE_URL", url)
        monkeypatch.setenv("STAGEGATE_BROKER_URL", BROKER_URL)
        monkeypatch.setenv("STAGEGATE_DECISION_WAIT", "0.2")
        monkeypatch.setenv("STAGEGATE_LEASE_SECONDS", "30")

        with TestClient(create_app()) as client:
            assert client.get("/readyz").status_code == 200
            started = time.monotonic()
            response = client.post(
                "/v1/stagings",
                json={"source": "s3://b/x/", "nodes": ["gpu-01"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 202
            # The decision wait came from the environment: 0.2 s, not the default 10 s.
            assert 0.2 <= time.monotonic() - started < 8
        # Shut down: the app closed the ledger it opened, so no connection to it is left. A
        # backend leaves pg_stat_activity a moment after its client hung up (it exits on its
        # own, later on a loaded machine): a leaked connection stays, a closed one is gone soon.
        deadline = time.monotonic() + 10
        while True:
            with pg_admin.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
                ).scalar_one()
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert left == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STAGEGATE_DECISION_WAIT", "soon"),
        ("STAGEGATE_DECISION_WAIT", "-1"),
        ("STAGEGATE_LEASE_SECONDS", "0"),
    ],
)
def test_bad_settings_are_refused_before_anything_opens(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("STAGEGATE_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x")
    with pytest.raises(InvalidInputError, match=variable):
        create_app()


# -- docs and error hygiene ----------------------------------------------------------------


def test_docs_explain_the_service(world: World) -> None:
    assert world.client.get("/docs").status_code == 200
    spec = world.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "stagegate"
    assert "stagegate token create" in spec["info"]["description"]
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert {"/v1/stagings", "/v1/stagings/{staging_id}", "/v1/nodes", "/v1/audit", "/v1/audit/verify"} <= set(
        spec["paths"]
    )


def test_an_internal_error_is_a_bare_500(world: World) -> None:
    with world.ledger.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE nodes RENAME TO nodes_moved"))
    app = create_app(world.ledger, world.dispatcher, decision_wait=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/nodes", headers=world.headers("scientist"))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the service's log has the details"}


def test_nodes_list_shows_caches(world: World) -> None:
    nodes = world.get("job", "/v1/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == ["gpu-01", "gpu-02"]
    first = nodes[0]
    assert first["root"] == "/nvme/stagegate"
    sizes = (first["capacity"], first["used"], first["pinned"], first["free"])
    assert sizes == (2 * 10**12, 0, 0, 2 * 10**12)
    assert first["alive"] is True and first["datasets"] == []
    assert datetime.fromisoformat(first["last_heartbeat"]).tzinfo is not None

    # Admit a staging as a worker's plan step would: gpu-01 now holds (writes) a pinned dataset.
    staging = world.staging_of("scientist")
    plan = TaskKey(staging.id, "plan", "", 0)
    steps = StagingSteps(world.ledger)
    assert steps.begin_planning(staging.id)
    assert Tasks(world.ledger, 60).claim(plan, "test-planner") is not None
    digest = "d" * 64
    portion = NodePortion("gpu-01", digest, files=3, bytes=1000, batches=[BatchRange("a", "c", 3, 1000)])
    steps.admit(staging.id, plan, "test-planner", [portion], {})

    first = world.get("auditor", "/v1/nodes").json()["nodes"][0]
    assert (first["used"], first["pinned"], first["free"]) == (1000, 1000, 2 * 10**12 - 1000)
    [dataset] = first["datasets"]
    assert (dataset["digest"], dataset["state"], dataset["pins"]) == (digest, "writing", 1)
    assert dataset["path"] == f"/nvme/stagegate/datasets/{digest}"
    seen = world.get("scientist", f"/v1/stagings/{staging.id}").json()
    assert seen["state"] == "transferring"
    assert seen["nodes"][0]["path"] == dataset["path"]
    assert (seen["progress"]["files_total"], seen["progress"]["bytes_total"]) == (3, 1000)


def test_the_embedded_sqlite_ledger_serves_too(tmp_path: Path, world: World) -> None:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        token = Tokens(ledger).create(user="sam", role="scientist").token
        admin = Tokens(ledger).create(user="root", role="admin").token
        Nodes(ledger).heartbeat("gpu-01", "/nvme", 10**12, "worker-1")
        with TestClient(create_app(ledger, world.dispatcher, decision_wait=0)) as client:
            auth = {"Authorization": f"Bearer {token}"}
            body = {"source": "s3://bucket/data/set", "nodes": ["gpu-01"]}
            created = client.post("/v1/stagings", json=body, headers=auth)
            assert created.status_code == 202
            staging_id = created.json()["id"]
            assert client.get(f"/v1/stagings/{staging_id}", headers=auth).json()["state"] == "pending"
            assert client.delete(f"/v1/stagings/{staging_id}", headers=auth).json()["state"] == "released"
            verdict = client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {admin}"}).json()
            assert verdict["ok"] is True and verdict["checked"] == 2
            assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_nothing_from_outside(world: World, page: str) -> None:
    """/docs and /redoc work on an air-gapped cluster: every script, style sheet and icon they
    name is served by the API itself (FastAPI's defaults load them from a CDN)."""
    html = world.client.get(page).text
    assets = re.findall(r"""(?:src|href)\s*[:=]\s*['"]([^'"]+)['"]""", html)
    assert assets, html
    for asset in assets:
        assert not re.match(r"^(https?:)?//", asset), f"{page} loads {asset} from outside"
        served = world.client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset


def test_latest_checkpoint_for_the_ui(world: World) -> None:
    from stagegate.ledger.checkpoints import Checkpoints
    from stagegate.ledger.signed_note import SignerKey

    assert world.get("auditor", "/v1/audit/checkpoint").json()["checkpoint"] is None
    world.post("scientist")
    world.post("scientist")
    key = SignerKey.generate("stagegate.local/audit")
    signed = Checkpoints(world.ledger, origin="stagegate.local/audit", signer=lambda: key).sign()
    body = world.get("auditor", "/v1/audit/checkpoint").json()
    cp = body["checkpoint"]
    assert (cp["size"], cp["root"], cp["note"]) == (signed.size, signed.root.hex(), signed.note)
    assert cp["key"] == f"stagegate.local/audit+{key.id:08x}" and cp["signature_ok"] is True
    assert cp["public_key"] == key.verifier().encode()
    assert body["consistent"] is None
    checked = world.get("admin", "/v1/audit/checkpoint", verify="true").json()
    assert (checked["consistent"], checked["problems"]) == (True, [])

    url = world.ledger.engine.url.render_as_string(hide_password=False)
    tamper(url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
    checked = world.get("auditor", "/v1/audit/checkpoint", verify="true").json()
    assert checked["consistent"] is False
    assert any("altered row at seq 1" in p for p in checked["problems"])
    tamper(url, "UPDATE audit_checkpoints SET note = replace(note, 'time 2', 'time 1')")
    assert world.get("auditor", "/v1/audit/checkpoint").json()["checkpoint"]["signature_ok"] is False
