"""Tests for workers.settings: the environment read like the command line."""

from pathlib import Path

import pytest

from stagegate.errors import InvalidInputError
from stagegate.sizes import parse_size
from stagegate.workers.settings import BANDWIDTH_ENV, WorkerSettings


def settings(tmp_path: Path) -> WorkerSettings:
    return WorkerSettings.from_env("n1", tmp_path / "root", capacity=1 << 30)


@pytest.mark.parametrize("text", ["600KB", "600kB", "4MiB", "1.5G", "300000", " 2 MB "])
def test_bandwidth_is_parsed_like_the_bandwidth_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv(BANDWIDTH_ENV, text)
    assert settings(tmp_path).bandwidth_limit == parse_size(text)
    assert settings(tmp_path).transfer_config().bandwidth_limit == parse_size(text)


def test_600kb_is_600_thousand_bytes_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BANDWIDTH_ENV, "600KB")
    assert settings(tmp_path).bandwidth_limit == 600_000


def test_no_bandwidth_means_no_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BANDWIDTH_ENV, raising=False)
    assert settings(tmp_path).bandwidth_limit is None


@pytest.mark.parametrize("text", ["banana", "-5MB", "0", "5 parsecs"])
def test_bad_bandwidth_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(BANDWIDTH_ENV, text)
    with pytest.raises(InvalidInputError, match=BANDWIDTH_ENV):
        settings(tmp_path)


def test_a_peer_server_needs_the_worker_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEGATE_PEER_LISTEN", "127.0.0.1:7070")
    with pytest.raises(InvalidInputError, match="credential"):
        settings(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("short\n")
    monkeypatch.setenv("STAGEGATE_PEER_SECRET_FILE", str(secret))
    with pytest.raises(InvalidInputError, match="at least 16"):
        settings(tmp_path)
    secret.write_text("a-long-enough-worker-secret\n")
    got = settings(tmp_path)
    assert got.peer_listen == ("127.0.0.1", 7070) and got.peer_url == "http://127.0.0.1:7070"
    assert got.peer_secret == "a-long-enough-worker-secret"
    assert "a-long-enough-worker-secret" not in repr(got)


@pytest.mark.parametrize("listen", ["7070", "host:", ":7070", "host:0", "host:99999", "host:x"])
def test_a_peer_address_is_host_and_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listen: str
) -> None:
    monkeypatch.setenv("STAGEGATE_PEER_LISTEN", listen)
    with pytest.raises(InvalidInputError, match="HOST:PORT"):
        settings(tmp_path)


def test_no_peer_address_serves_no_peers(tmp_path: Path) -> None:
    got = settings(tmp_path)
    assert got.peer_listen is None and got.peer_url is None and got.fanout_readers == 1
