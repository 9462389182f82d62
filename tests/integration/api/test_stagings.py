"""Submitting stagings: idempotency, validation, the plan task message, the decision wait."""

import base64
import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from stagegate.ledger import AuditTrail, Ledger, StagingSteps, TaskKey, Tasks
from stagegate.queues import PLAN_QUEUE

from .conftest import SOURCE, World, open_world

pytestmark = pytest.mark.integration


def requested_events(world: World, job: str | None = None) -> int:
    return len(AuditTrail(world.ledger).query(action="stage.requested", job=job))


# -- idempotency ---------------------------------------------------------------------------


def test_same_key_twice_is_one_staging(world: World) -> None:
    first = world.post("scientist", idempotency_key="run-42", job="slurm-42")
    again = world.post("scientist", idempotency_key="run-42", job="slurm-42")

    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert requested_events(world) == 1
    assert world.plan_queue() == 1  # the repeat sent no second plan
    assert len(world.get("admin", "/v1/stagings").json()["stagings"]) == 1


def test_same_key_with_another_request_is_a_409_and_records_nothing(world: World) -> None:
    first = world.post("scientist", idempotency_key="run-43")
    clash = world.post("scientist", idempotency_key="run-43", source="s3://other-bucket/data")

    assert (first.status_code, clash.status_code) == (202, 409)
    assert first.json()["id"] in clash.json()["detail"]
    assert requested_events(world) == 1
    assert world.plan_queue() == 1


def test_same_key_from_another_user_is_another_staging(world: World) -> None:
    sams = world.post("scientist", idempotency_key="shared-key")
    jays = world.post("job", idempotency_key="shared-key")

    assert (sams.status_code, jays.status_code) == (202, 202)
    assert sams.json()["id"] != jays.json()["id"]
    assert (sams.json()["user"], jays.json()["user"]) == ("sam", "jay")
    assert requested_events(world) == 2
    assert world.plan_queue() == 2


# -- validation ----------------------------------------------------------------------------

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
# About half of real AWS secret keys hold "/" or "+": urlsplit's host ends at the first "/".
SLASHED_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY"
BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown mode": ({"mode": "mirror"}, "mode"),
    "no nodes": ({"nodes": []}, "nodes"),
    "a node twice": ({"nodes": ["gpu-01", "gpu-02", "gpu-01"]}, "gpu-01"),
    "unknown node": ({"nodes": ["gpu-01", "gpu-99"]}, "unknown node(s): gpu-99"),
    "unsafe node name": ({"nodes": ["../etc"]}, "nodes.0"),
    "too many nodes": ({"nodes": [f"gpu-{i:02}" for i in range(65)]}, "nodes"),
    "empty source": ({"source": ""}, "source"),
    "huge source": ({"source": "s3://bucket/" + "k" * 4100}, "source"),
    "huge job ref": ({"job": "j" * 201}, "job"),
    "huge idempotency key": ({"idempotency_key": "k" * 201}, "idempotency_key"),
    "s3 URL with credentials": ({"source": f"s3://{AWS_KEY_ID}:{AWS_SECRET}@bucket/x"}, "credentials"),
    "https URL with a password": ({"source": "https://user:hunter2pw@data.example.org/x"}, "credentials"),
    "s3 secret holding a slash": ({"source": f"s3://{AWS_KEY_ID}:{SLASHED_SECRET}@bucket/x"}, "credentials"),
    "secret holding a space and a ?": ({"source": "s3://AK:hunter2pw ?x#y@bucket/x"}, "credentials"),
    "presigned URL": (
        {"source": f"https://h.example/x?X-Amz-Credential={AWS_KEY_ID}&X-Amz-Signature={AWS_SECRET}"},
        "credentials",
    ),
}


@pytest.mark.parametrize(("body", "says"), list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_input_is_400_and_nothing_is_recorded(world: World, body: dict[str, Any], says: str) -> None:
    response = world.post("scientist", **body)

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and says in detail
    for secret in (AWS_SECRET, AWS_KEY_ID, "hunter2pw", SLASHED_SECRET, *SLASHED_SECRET.split("/")):
        assert secret not in response.text
    assert AuditTrail(world.ledger).query() == []
    assert world.get("admin", "/v1/stagings").json() == {"stagings": []}
    assert world.plan_queue() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"source": SOURCE, "nodes": ["gpu-01"], "destination": f"s3://u:{AWS_SECRET}@b/"},
        {"nodes": ["gpu-01"]},
        {"source": SOURCE, "nodes": "gpu-01"},
    ],
    ids=["extra field", "missing source", "nodes not a list"],
)
def test_a_body_of_another_shape_is_422(world: World, body: dict[str, Any]) -> None:
    response = world.client.post("/v1/stagings", json=body, headers=world.headers("scientist"))

    assert response.status_code == 422, response.text
    assert AWS_SECRET not in response.text  # the offending input is not echoed back
    assert all(set(e) == {"type", "loc", "msg"} for e in response.json()["detail"])
    assert AuditTrail(world.ledger).query() == []


def test_malformed_json_is_422(world: World) -> None:
    response = world.client.post(
        "/v1/stagings",
        content=b'{"source": "s3://b/x", "nodes": [',
        headers={**world.headers("scientist"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


# -- the plan task -------------------------------------------------------------------------


def test_post_queues_a_plan_task_of_identifiers_only(world: World) -> None:
    source = "s3://classified-bucket/project-x/secret-plans/"
    response = world.post("scientist", source=source, nodes=["gpu-01", "gpu-02"], job="slurm-1")
    staging_id = response.json()["id"]

    raw = world.redis.lrange(PLAN_QUEUE, 0, -1)
    assert len(raw) == 1
    assert source.encode() not in raw[0] and b"classified-bucket" not in raw[0]
    message = json.loads(raw[0])
    assert message["headers"]["task"] == "stagegate.plan"
    assert message["properties"]["body_encoding"] == "base64"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == []
    assert kwargs == {"job_id": staging_id, "kind": "plan", "node": "", "idx": 0}
    assert b"classified-bucket" not in base64.b64decode(message["body"])
    # The ledger holds the task the message names, queued with a lease.
    task = Tasks(world.ledger, 60).get(TaskKey(staging_id, "plan", "", 0))
    assert task is not None and task.state == "queued"


# -- the decision wait ---------------------------------------------------------------------


def test_without_a_worker_post_returns_pending_after_the_wait(world: World) -> None:
    started = time.monotonic()
    response = world.post("scientist")
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert response.json()["state"] == "pending"
    assert 0.3 <= elapsed < 8  # the fast wait (0.3 s) ran out, not the default 10 s


class Planner(threading.Thread):
    """Plays the plan step of a node worker: takes the plan message off the queue, claims the
    task, and decides through the ledger, as the worker does."""

    def __init__(self, world: World, decide: str) -> None:
        super().__init__(daemon=True)
        self.world, self.decide = world, decide
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            popped = self.world.redis.brpop([PLAN_QUEUE], timeout=10)
            assert popped is not None, "no plan message arrived"
            body = json.loads(base64.b64decode(json.loads(popped[1])["body"]))
            key = TaskKey(**body[1])
            time.sleep(0.3)  # the API is polling by now
            ledger: Ledger = self.world.ledger
            steps = StagingSteps(ledger)
            assert steps.begin_planning(key.job_id)
            assert Tasks(ledger, 60).claim(key, "test-planner") is not None
            if self.decide == "deny":
                reasons = ["restricted data may not be staged to zone 'lab'", "no DUA for project vision"]
                steps.deny(key.job_id, key, "test-planner", reasons, {"classification": "restricted"})
            else:
                steps.fail(key.job_id, "the source does not exist")
        except BaseException as exc:
            self.error = exc


def test_a_denial_during_the_wait_is_a_403_with_reasons(pg_admin: sa.Engine) -> None:
    with open_world(pg_admin, decision_wait=10) as world:
        planner = Planner(world, "deny")
        planner.start()
        started = time.monotonic()
        response = world.post("scientist", idempotency_key="denied-once")
        elapsed = time.monotonic() - started
        planner.join(10)
        assert planner.error is None, planner.error

        assert response.status_code == 403, response.text
        assert elapsed < 9  # decided before the 10 s wait ran out
        detail = response.json()["detail"]
        assert detail["reasons"] == [
            "restricted data may not be staged to zone 'lab'",
            "no DUA for project vision",
        ]
        assert "restricted data may not be staged" in detail["message"]
        assert detail["staging"]["state"] == "denied"
        assert detail["staging"]["reasons"] == detail["reasons"]
        staging_id = detail["staging"]["id"]
        assert world.get("scientist", f"/v1/stagings/{staging_id}").json()["state"] == "denied"
        assert len(AuditTrail(world.ledger).query(action="policy.denied", job=staging_id)) == 1

        # Retrying the same request (say, after a timeout) gets the same answer, at once.
        started = time.monotonic()
        again = world.post("scientist", idempotency_key="denied-once")
        assert again.status_code == 403
        assert again.json()["detail"]["staging"]["id"] == staging_id
        assert time.monotonic() - started < 9  # answered at once, not after the 10 s wait


def test_any_decision_ends_the_wait(pg_admin: sa.Engine) -> None:
    with open_world(pg_admin, decision_wait=10) as world:
        planner = Planner(world, "fail")
        planner.start()
        started = time.monotonic()
        response = world.post("scientist")
        planner.join(10)
        assert planner.error is None, planner.error

        assert response.status_code == 202
        assert time.monotonic() - started < 9  # the failure ended the 10 s wait
        assert response.json()["state"] == "failed"
        assert response.json()["errors"] == ["the source does not exist"]
