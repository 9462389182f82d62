"""Signing in and out: the cookie's flags, where the token may never appear, cross-site refusals."""

import logging

import pytest
from fastapi.testclient import TestClient

from stagegate.ledger import Tokens

from .conftest import Site, sign_in

pytestmark = pytest.mark.integration


def test_sign_in_sets_an_opaque_strict_httponly_cookie(site: Site, client: TestClient) -> None:
    token = site.scene.tokens["auditor"]
    response = sign_in(client, token, "/ui/audit?user=sam")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/audit?user=sam"
    cookie = response.headers["set-cookie"]
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert "secure" not in flags  # plain http here; see the https test
    value = client.cookies["stagegate_ui"]
    assert token not in cookie and token not in value and len(value) >= 43
    page = client.get("/ui/audit")
    assert page.status_code == 200 and "ada (auditor" in page.text
    assert token not in page.text and token not in str(page.headers)


def test_over_https_the_cookie_is_secure(site: Site) -> None:
    with TestClient(site.app, base_url="https://testserver", follow_redirects=False) as secure:
        response = secure.post(
            "/ui/login",
            data={"token": site.scene.tokens["auditor"]},
            headers={"Origin": "https://testserver"},
        )
    assert response.status_code == 303
    assert "secure" in [f.strip().lower() for f in response.headers["set-cookie"].split(";")]


def test_pages_need_a_session_and_send_you_to_sign_in(client: TestClient) -> None:
    response = client.get("/ui/stagings?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fstagings%3Fx%3D1"
    client.cookies.set("stagegate_ui", "made-up", path="/ui")
    assert client.get("/ui/stagings").status_code == 303


@pytest.mark.parametrize(
    ("token", "status", "says"),
    [
        ("sg_" + "x" * 43, 401, "Unknown or revoked token"),
        ("hunter2", 401, "Unknown or revoked token"),
        ("", 401, "Unknown or revoked token"),
    ],
)
def test_a_bad_token_is_refused_without_echo(client: TestClient, token: str, status: int, says: str) -> None:
    response = sign_in(client, token)
    assert response.status_code == status and says in response.text
    assert "set-cookie" not in response.headers
    if token:
        assert token not in response.text


def test_a_job_token_gets_nothing(site: Site, client: TestClient) -> None:
    response = sign_in(client, site.scene.tokens["job"])
    assert response.status_code == 403 and "cannot sign in" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/ui/stagings").status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Referer": "http://evil.example/page"},
        {},
    ],
    ids=["foreign origin", "foreign referer", "no origin at all"],
)
def test_cross_site_sign_in_is_refused(site: Site, client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/ui/login", data={"token": site.scene.tokens["auditor"]}, headers=headers)
    assert response.status_code == 403 and "cross-site" in response.text
    assert "set-cookie" not in response.headers


def test_sign_out_needs_the_form_token_and_ends_the_session(site: Site, client: TestClient) -> None:
    sign_in(client, site.scene.tokens["auditor"])
    session_id = client.cookies["stagegate_ui"]
    own = {"Origin": "http://testserver"}
    stale = client.post("/ui/logout", data={"csrf": "guessed"}, headers=own)
    assert stale.status_code == 403
    assert client.get("/ui/audit").status_code == 200  # still signed in
    foreign = client.post("/ui/logout", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    csrf = site.app.state.ui_sessions.get(session_id).csrf
    assert f'name="csrf" value="{csrf}"' in client.get("/ui/audit").text
    out = client.post("/ui/logout", data={"csrf": csrf}, headers=own)
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    assert 'stagegate_ui=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.set("stagegate_ui", session_id, path="/ui")  # the old cookie, replayed
    assert client.get("/ui/audit").status_code == 303


def test_a_revoked_token_ends_its_sessions(site: Site, client: TestClient) -> None:
    issued = Tokens(site.ledger).create(user="ann", role="auditor")
    sign_in(client, issued.token)
    assert client.get("/ui/audit").status_code == 200
    Tokens(site.ledger).revoke(issued.id)
    assert client.get("/ui/audit").status_code == 303


def test_the_redirect_after_sign_in_stays_here(site: Site, client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/ui/", "/ui//evil.example"):
        response = sign_in(client, site.scene.tokens["scientist"], target)
        assert response.headers["location"] == "/ui/"


def test_tokens_never_reach_the_log(site: Site, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for who in ("auditor", "scientist", "job"):
        sign_in(client, site.scene.tokens[who])
        client.get("/ui/stagings")
    sign_in(client, "sg_not-a-real-one")
    assert "ui sign-in: user ada" in caplog.text
    for token in [*site.scene.tokens.values(), "sg_not-a-real-one"]:
        assert token not in caplog.text


def test_pages_forbid_scripts_and_framing(site: Site, client: TestClient) -> None:
    sign_in(client, site.scene.tokens["auditor"])
    headers = client.get("/ui/audit").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")


def test_signing_in_again_replaces_the_session(site: Site, client: TestClient) -> None:
    sign_in(client, site.scene.tokens["auditor"])
    first = client.cookies["stagegate_ui"]
    sign_in(client, site.scene.tokens["scientist"])
    second = client.cookies["stagegate_ui"]
    assert first != second
    assert site.app.state.ui_sessions.get(first) is None
    assert client.get("/ui/audit").status_code == 403  # now the scientist
