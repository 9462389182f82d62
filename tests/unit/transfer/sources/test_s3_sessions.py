"""S3 clients are made from one loaded session per AWS environment (transfer.sources.s3):
cheap to make, and still as a fresh session would make them when the environment changes."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from stagegate.transfer.sources import s3


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


def test_clients_of_one_environment_share_its_session_and_keep_their_own_pools() -> None:
    first, second = s3.make_client(4), s3.make_client(16)
    with s3._sessions_lock:
        session = s3._session()
    assert first is not second
    assert first.meta.config.max_pool_connections == 4 and second.meta.config.max_pool_connections == 16
    assert first.meta.endpoint_url == "http://127.0.0.1:9"
    with s3._sessions_lock:
        assert s3._session() is session


def test_a_changed_environment_gets_a_session_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    before = s3.make_client(4)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:10")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    after = s3.make_client(4)
    assert before.meta.endpoint_url == "http://127.0.0.1:9"
    assert after.meta.endpoint_url == "http://127.0.0.1:10"
    credentials = after._request_signer._credentials  # what it signs with
    assert credentials.access_key == "another-key"


def test_no_credential_is_kept_in_the_clear_as_a_key() -> None:
    s3.make_client(4)
    assert all("test-secret" not in key and "test-key" not in key for key in s3._sessions)


def test_clients_made_in_many_threads_at_once_all_work() -> None:
    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(lambda _: s3.make_client(4), range(64)))
    assert len({id(c) for c in clients}) == 64
    assert all(c.meta.region_name == "us-east-1" for c in clients)
