"""How the service's error answers become exceptions, and exceptions and states exit codes."""

import logging

import pytest

from stagegate.client.errors import (
    EXIT_BAD_INPUT,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_OK,
    AuthenticationError,
    PermissionDeniedError,
    ServiceError,
    ServiceProtocolError,
    ServiceUnavailableError,
    StagingDeniedError,
    WaitTimeoutError,
    service_exit_code,
    state_exit_code,
)
from stagegate.client.service_client import ServiceClient, detail_message, error_for
from stagegate.client.service_models import Staging
from stagegate.errors import InvalidInputError, NotFoundError
from unit.client.service_samples import staging_json

URL = "http://stagegate:8080"
SECRET = "sg_s3cr3t-never-shown"


def err(status: int, body: object = None, has_token: bool = True) -> Exception:
    return error_for(status, body, URL, "/v1/stagings/st-1", has_token)


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("pending", EXIT_OK),
        ("planning", EXIT_OK),
        ("transferring", EXIT_OK),
        ("ready", EXIT_OK),
        ("denied", EXIT_DENIED),
        ("failed", EXIT_FAILED),
        ("released", EXIT_FAILED),
    ],
)
def test_state_exit_codes(state, code):
    assert state_exit_code(state) == code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (StagingDeniedError("denied", None, ["x"]), EXIT_DENIED),
        (PermissionDeniedError("not permitted"), EXIT_DENIED),
        (AuthenticationError("bad token"), EXIT_BAD_INPUT),
        (ServiceUnavailableError("down"), EXIT_FAILED),
        (ServiceProtocolError("garbage"), EXIT_FAILED),
        (WaitTimeoutError("slow", Staging(id="x", state="planning")), EXIT_FAILED),
        (ServiceError("HTTP 500"), EXIT_FAILED),
    ],
)
def test_service_exit_codes(exc, code):
    assert service_exit_code(exc) == code


def test_401_without_a_token_says_to_set_one():
    exc = err(401, {"detail": "missing bearer token"}, has_token=False)
    assert isinstance(exc, AuthenticationError)
    assert "set STAGEGATE_TOKEN" in str(exc)


def test_401_with_a_token_says_it_was_refused():
    exc = err(401, {"detail": "unknown token"})
    assert isinstance(exc, AuthenticationError)
    assert str(exc) == "the service refused the token in STAGEGATE_TOKEN: unknown token"


def test_403_with_reasons_is_a_denied_staging():
    denied = staging_json("denied", reasons=["a.csv is confidential"])
    body = {
        "detail": {"message": "denied by policy", "reasons": ["a.csv is confidential"], "staging": denied}
    }
    exc = err(403, body)
    assert isinstance(exc, StagingDeniedError)
    assert exc.reasons == ("a.csv is confidential",)
    assert exc.staging is not None and exc.staging.state == "denied"
    assert str(exc) == "denied by policy"
    assert service_exit_code(exc) == EXIT_DENIED


def test_403_with_reasons_but_no_staging():
    exc = err(403, {"detail": {"message": "denied", "reasons": ["r"]}})
    assert isinstance(exc, StagingDeniedError)
    assert exc.staging is None and exc.reasons == ("r",)


def test_other_403_is_a_permission_error():
    exc = err(403, {"detail": "role auditor may not release stagings"})
    assert isinstance(exc, PermissionDeniedError)
    assert isinstance(exc, PermissionError)
    assert "role auditor may not release" in str(exc)


def test_404_is_not_found():
    exc = err(404, {"detail": "no staging st-1"})
    assert isinstance(exc, NotFoundError) and str(exc) == "no staging st-1"
    assert "/v1/stagings/st-1" in str(err(404, None))


def test_400_carries_the_servers_message():
    exc = err(400, {"detail": "unknown node(s): gpu-99"})
    assert isinstance(exc, InvalidInputError) and str(exc) == "unknown node(s): gpu-99"


def test_422_names_the_fields():
    body = {
        "detail": [
            {"loc": ["body", "nodes"], "msg": "List should have at least 1 item", "type": "too_short"},
            {"loc": ["body", "mode"], "msg": "Input should be 'replicate' or 'shard'", "type": "enum"},
        ]
    }
    exc = err(422, body)
    assert isinstance(exc, InvalidInputError)
    assert str(exc) == "nodes: List should have at least 1 item; mode: Input should be 'replicate' or 'shard'"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_unavailable(status):
    exc = err(status, None)
    assert isinstance(exc, ServiceUnavailableError)
    assert URL in str(exc) and str(status) in str(exc)


def test_other_statuses_are_service_errors_naming_the_url():
    exc = err(500, {"detail": "boom"})
    assert type(exc) is ServiceError
    assert exc.status == 500
    assert str(exc) == f"the service at {URL} answered HTTP 500: boom"


@pytest.mark.parametrize(
    ("detail", "text"),
    [
        ("plain", "plain"),
        ({"message": "m", "reasons": []}, "m"),
        ([{"loc": ["query", "limit"], "msg": "too big"}], "limit: too big"),
        ([{"msg": "bad"}], "bad"),
        (None, ""),
        (42, ""),
    ],
)
def test_detail_message(detail, text):
    assert detail_message(detail) == text


def test_the_token_is_nowhere_to_be_seen(caplog):
    caplog.set_level(logging.DEBUG)
    client = ServiceClient("http://10.0.0.5:8080", SECRET)  # plain http off loopback: a warning
    try:
        assert SECRET not in repr(client)
        assert SECRET not in repr(client.__dict__)
        assert SECRET not in repr(client._http.headers)  # httpx masks Authorization
        assert "plain http" in caplog.text
        assert SECRET not in caplog.text
    finally:
        client.close()


def test_no_warning_on_loopback(caplog):
    with ServiceClient("http://127.0.0.1:8080", SECRET):
        pass
    assert "plain http" not in caplog.text


@pytest.mark.parametrize("token", ["a b", "line\nbreak", "tökén", "   "])
def test_a_malformed_token_is_refused_without_echoing_it(token):
    with pytest.raises(InvalidInputError) as info:
        ServiceClient(URL, token)
    assert token.strip() == "" or token not in str(info.value)
    assert "STAGEGATE_TOKEN" in str(info.value)


@pytest.mark.parametrize(
    "url", ["stagegate:8080", "ftp://stagegate", "http://", "", "http://user:pw@stagegate:8080"]
)
def test_bad_service_urls(url):
    with pytest.raises(InvalidInputError) as info:
        ServiceClient(url, SECRET)
    assert "pw" not in str(info.value)


def test_base_url_keeps_a_path_prefix_and_drops_the_query():
    with ServiceClient("https://gw.example.org/stagegate/?x=1", SECRET) as client:
        assert client.base_url == "https://gw.example.org/stagegate"
