"""The pages' fixtures: the real app on a fresh PostgreSQL database holding ``scenes.populate``'s
history, called through Starlette's TestClient or served by uvicorn on loopback to Debian's
headless Chromium. Without that browser the browser tests fail, saying how to install it."""

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integration.postgres import fresh_pg_database
from stagegate.api.app import create_app
from stagegate.ledger import Ledger, open_ledger
from stagegate.queues import Dispatcher, make_celery

from .scenes import Scene, populate

# The pages queue nothing; the dispatcher only has to exist (nothing is sent to this database).
BROKER_URL = "redis://127.0.0.1:6379/14"
CHROMIUM = os.environ.get("STAGEGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Site:
    app: FastAPI
    ledger: Ledger
    scene: Scene


@pytest.fixture(scope="module")
def site(pg_admin: sa.Engine) -> Iterator[Site]:
    with fresh_pg_database(pg_admin, migrated=True) as url, open_ledger(url) as ledger:
        scene = populate(ledger)
        celery_app = make_celery(BROKER_URL)
        try:
            yield Site(create_app(ledger, Dispatcher(celery_app), decision_wait=0), ledger, scene)
        finally:
            celery_app.close()


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    """A browser-like client of its own (its own cookie jar), not following redirects."""
    with TestClient(site.app, follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, token: str, next_path: str = "/ui/") -> httpx.Response:
    response: httpx.Response = client.post(
        "/ui/login", data={"token": token, "next": next_path}, headers={"Origin": "http://testserver"}
    )
    return response


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(site: Site) -> Iterator[str]:
    """The app served by uvicorn on loopback: what a browser talks to."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start serving the pages within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by playwright (which downloads no browser here).
    Per module, not per session: playwright's sync API keeps an event loop running in this
    thread while it is open, and a later test's ``asyncio.run`` would find it there."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: install it with "
            "`apt-get install -y chromium chromium-driver` (.ci/run does), "
            "or point STAGEGATE_TEST_CHROMIUM at one"
        )
    from playwright.sync_api import sync_playwright

    # Each launch gets a fresh profile in a temporary directory of playwright's own.
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()
