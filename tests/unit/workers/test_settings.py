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
