"""Shared fixtures: a real S3 server (moto's ThreadedMotoServer) on loopback, one per session.

The server runs in this process, so tests can also reach into its backend (to corrupt stored
bytes, for instance). Every test that needs S3 gets its own bucket.
"""

import logging
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

# No per-example deadline: hypothesis's default 200 ms is a timed assertion, and on this shared
# two-core machine a property test that writes files outran it under load (a failure that said
# nothing about the code). Examples still stop at max_examples.
settings.register_profile("stagegate", deadline=None)
settings.load_profile("stagegate")

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that would steer boto3 elsewhere than the loopback server.
_S3_ENV_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="session", autouse=True)
def bytecode_cache() -> Iterator[None]:
    """The processes the tests start (the CLI, ``stagegate serve``, workers: hundreds a run) keep
    our modules' compiled bytecode in ``__pycache__`` beside the sources (ignored by git), as an
    installed package has, instead of compiling them from source each time (this machine sets
    PYTHONDONTWRITEBYTECODE=1: about 0.3 s of CPU per process). Not PYTHONPYCACHEPREFIX: with a
    prefix Python ignores the installed packages' own bytecode too, and the first processes of a
    session compiled all of them at once (past a start's 120 s bound under load)."""
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved


@pytest.fixture(autouse=True)
def stagegate_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test gets its own embedded ledger: nothing lands in the real ~/.local/share."""
    home = str(tmp_path_factory.mktemp("stagegate-home"))
    monkeypatch.setenv("STAGEGATE_HOME", home)
    monkeypatch.delenv("STAGEGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("STAGEGATE_POLICY", raising=False)
    return home


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server on 127.0.0.1; boto3 (ours and the code under test) points at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*S3_ENV, *_S3_ENV_CLEARED, "AWS_ENDPOINT_URL")}
    os.environ.update(S3_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for k in _S3_ENV_CLEARED:
        os.environ.pop(k, None)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=s3_endpoint, config=Config(max_pool_connections=32)
    )


@pytest.fixture
def bucket(s3_client) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket for this test."""
    name = f"sg-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def subprocess_env(s3_endpoint: str) -> dict[str, str]:
    """Environment for running the CLI in a subprocess against the loopback S3 server."""
    env = {k: v for k, v in os.environ.items() if k not in _S3_ENV_CLEARED}  # STAGEGATE_HOME included
    env.update(S3_ENV)
    env["AWS_ENDPOINT_URL"] = s3_endpoint
    return env
