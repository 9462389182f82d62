"""API fixtures: the real app, called through Starlette's TestClient (the ASGI path a server
takes), backed by a fresh PostgreSQL database per test (``integration.postgres``) and a
dedicated Redis database for the broker, flushed around each test. Nothing is mocked.
"""

import atexit
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from integration.postgres import fresh_pg_database
from stagegate.api.app import create_app
from stagegate.confinement import SourceRules
from stagegate.ledger import Ledger, Nodes, Principal, Staging, StagingRequests, Tokens, open_ledger
from stagegate.queues import PLAN_QUEUE, Dispatcher, make_celery

REDIS = "redis://127.0.0.1:6379"
# Ten databases, clear of the low numbers a developer's own broker uses (0 and 1): one per test
# process, and the suite runs in four (pytest-xdist), so two checkouts' runs at once still fit.
CLAIMABLE_DBS = range(6, 16)


def _claim_redis_db() -> str:
    """A Redis database of its own for this test process: the tests flush it, so two test
    processes at once (pytest-xdist's workers; two checkouts on one machine) must not share one.
    A claim is a key in db 0 that expires, so a killed run frees its database within the hour."""
    try:
        claims = redis.Redis.from_url(f"{REDIS}/0")
        for db in CLAIMABLE_DBS:
            if claims.set(f"stagegate-test:api-db:{db}", os.getpid(), nx=True, ex=3600):
                atexit.register(claims.delete, f"stagegate-test:api-db:{db}")
                return f"{REDIS}/{db}"
    except redis.ConnectionError:
        return f"{REDIS}/{CLAIMABLE_DBS[0]}"  # flushed_redis() names the missing server
    # Sharing one would let another process's flush empty this one's queues mid-test: a failure
    # that says nothing about the code. Say so instead.
    raise RuntimeError(
        f"every Redis database the API tests may claim ({CLAIMABLE_DBS.start}-{CLAIMABLE_DBS.stop - 1})"
        " is held by another test process (keys stagegate-test:api-db:* in db 0)"
    )


# Its own Redis database: flushing it cannot disturb other suites or a developer's broker.
BROKER_URL = os.environ.get("STAGEGATE_TEST_API_BROKER_URL") or _claim_redis_db()
FAST_DECISION_WAIT = 0.3
SOURCE = "s3://bucket/project/data/"

# Who calls: a user per role, and a second scientist to be "someone else".
USERS = {
    "job": "jay",
    "scientist": "sam",
    "steward": "sue",
    "auditor": "ada",
    "admin": "root",
    "other": "bob",
}
ROLE_OF = {
    **{role: role for role in ("job", "scientist", "steward", "auditor", "admin")},
    "other": "scientist",
}
UNKNOWN_TOKEN = "sg_" + "x" * 43


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def flushed_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"the API tests need Redis at {BROKER_URL}: {exc}")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@dataclass
class World:
    """A running API with its ledger, broker database and a token per caller."""

    client: TestClient
    ledger: Ledger
    redis: redis.Redis
    dispatcher: Dispatcher
    tokens: dict[str, str]
    principals: dict[str, Principal]

    def headers(self, who: str) -> dict[str, str]:
        if who == "none":
            return {}
        token = UNKNOWN_TOKEN if who == "bad" else self.tokens[who]
        return {"Authorization": f"Bearer {token}"}

    def post(self, who: str, **body: object) -> httpx.Response:
        body.setdefault("source", SOURCE)
        body.setdefault("nodes", ["gpu-01"])
        response: httpx.Response = self.client.post("/v1/stagings", json=body, headers=self.headers(who))
        return response

    def get(self, who: str, path: str, **params: object) -> httpx.Response:
        response: httpx.Response = self.client.get(path, params=params, headers=self.headers(who))
        return response

    def delete(self, who: str, path: str) -> httpx.Response:
        response: httpx.Response = self.client.delete(path, headers=self.headers(who))
        return response

    def staging_of(self, who: str, source: str = SOURCE, nodes: tuple[str, ...] = ("gpu-01",)) -> Staging:
        """A staging submitted straight through the ledger, as ``who``."""
        staging, _, _ = StagingRequests(self.ledger).submit(self.principals[who], source=source, nodes=nodes)
        return staging

    def plan_queue(self) -> int:
        return int(self.redis.llen(PLAN_QUEUE))


@contextmanager
def open_world(
    pg_admin: sa.Engine,
    decision_wait: float = FAST_DECISION_WAIT,
    source_rules: SourceRules | None = None,
    lease_seconds: float | None = None,
) -> Iterator[World]:
    with (
        fresh_pg_database(pg_admin, migrated=True) as url,
        flushed_redis() as broker,
        open_ledger(url) as ledger,
    ):
        tokens: dict[str, str] = {}
        principals: dict[str, Principal] = {}
        for who, user in USERS.items():
            issued = Tokens(ledger).create(user=user, role=ROLE_OF[who], project="vision")
            tokens[who] = issued.token
            principal = Tokens(ledger).authenticate(issued.token)
            assert principal is not None
            principals[who] = principal
        nodes = Nodes(ledger)
        nodes.heartbeat("gpu-01", "/nvme/stagegate", 2 * 10**12, "worker-gpu-01")
        nodes.heartbeat("gpu-02", "/nvme/stagegate", 2 * 10**12, "worker-gpu-02")
        celery_app = make_celery(BROKER_URL)
        dispatcher = Dispatcher(celery_app)
        app = create_app(
            ledger,
            dispatcher,
            decision_wait=decision_wait,
            source_rules=source_rules,
            lease_seconds=lease_seconds,
        )
        try:
            with TestClient(app) as client:
                yield World(client, ledger, broker, dispatcher, tokens, principals)
        finally:
            celery_app.close()


@pytest.fixture
def world(pg_admin: sa.Engine) -> Iterator[World]:
    with open_world(pg_admin) as opened:
        yield opened
