"""How the Python client ends a wait: ready returns, the rest raise the CLI's errors."""

import pytest

from stagegate.client.errors import (
    EXIT_DENIED,
    EXIT_FAILED,
    StagingDeniedError,
    StagingFailedError,
    service_exit_code,
)
from stagegate.client.service_api import Client, check_ended
from stagegate.client.service_models import Staging
from stagegate.errors import InvalidInputError


def test_ready_and_running_come_back() -> None:
    for state in ("ready", "transferring", "pending"):
        staging = Staging(id="s1", state=state)
        assert check_ended(staging) is staging


def test_denied_raises_with_the_reasons_the_cli_prints() -> None:
    staging = Staging(id="s1", state="denied", reasons=("a.bin: label pii is above public",))
    with pytest.raises(StagingDeniedError) as info:
        check_ended(staging)
    assert str(info.value) == "staging s1 was denied by the policy:\n  a.bin: label pii is above public"
    assert info.value.staging is staging and info.value.reasons == staging.reasons
    assert service_exit_code(info.value) == EXIT_DENIED


@pytest.mark.parametrize("state", ["failed", "released"])
def test_failed_or_released_raises_with_the_errors(state: str) -> None:
    staging = Staging(id="s2", state=state, errors=("node a: disk full",))
    with pytest.raises(StagingFailedError) as info:
        check_ended(staging)
    assert str(info.value) == f"staging s2 {state}\n  node a: disk full"
    assert info.value.staging is staging
    assert service_exit_code(info.value) == EXIT_FAILED


def test_no_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGEGATE_URL", raising=False)
    with pytest.raises(InvalidInputError, match="STAGEGATE_URL"):
        Client()


def test_the_server_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEGATE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("STAGEGATE_TOKEN", "sg_secret")
    with Client() as client:
        assert client.service.base_url == "http://127.0.0.1:9"
        assert "sg_secret" not in repr(client)
        assert client.service._http.headers["Authorization"] == "Bearer sg_secret"
