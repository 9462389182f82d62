"""Who sees which page: every /ui route against every kind of caller, as test_roles.py does for /v1."""

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from stagegate.api.ui import pages

from .conftest import Site, sign_in

pytestmark = pytest.mark.integration

# "none": no session; "job": tried to sign in with a job token (refused, so no session either);
# "other" is a second scientist (bob), to whom sam's staging and egress belong to someone else.
CALLERS = ("none", "job", "scientist", "other", "steward", "auditor", "admin")
OUT = 303  # to the sign-in page
MATRIX: dict[str, tuple[int, ...]] = {
    "/ui/login": (200, 200, 200, 200, 200, 200, 200),
    "/ui/": (OUT, OUT, 303, 303, 303, 303, 303),
    "/ui": (OUT, OUT, 303, 303, 303, 303, 303),
    "/ui/audit": (OUT, OUT, 403, 403, 403, 200, 200),
    "/ui/audit.csv": (OUT, OUT, 403, 403, 403, 200, 200),
    "/ui/stagings": (OUT, OUT, 200, 200, 200, 200, 200),
    "/ui/stagings/{sams}": (OUT, OUT, 200, 404, 404, 200, 200),
    "/ui/egress": (OUT, OUT, 200, 200, 200, 200, 200),
    "/ui/egress/{sams}": (OUT, OUT, 200, 404, 200, 200, 200),
    "/ui/usage": (OUT, OUT, 403, 403, 403, 200, 200),
    "/ui/nodes": (OUT, OUT, 200, 200, 200, 200, 200),
    "/ui/integrity": (OUT, OUT, 403, 403, 403, 200, 200),
    "/ui/static/ui.css": (200, 200, 200, 200, 200, 200, 200),
    "POST /ui/logout": (303, 303, 303, 303, 303, 303, 303),
    "POST /ui/login": (403, 403, 403, 403, 403, 403, 403),  # from another site: refused for all
}
CASES = [
    pytest.param(path, caller, codes[i], id=f"{path} as {caller}")
    for path, codes in MATRIX.items()
    for i, caller in enumerate(CALLERS)
]


@pytest.fixture
def as_caller(site: Site, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with TestClient(site.app, follow_redirects=False) as client:
        yield client


def _signed_in(site: Site, client: TestClient, caller: str) -> None:
    if caller == "none":
        return
    response = sign_in(client, site.scene.tokens[caller])
    assert response.status_code == (403 if caller == "job" else 303)


@pytest.mark.parametrize(("path", "caller", "expected"), CASES)
def test_page_matrix(site: Site, as_caller: TestClient, path: str, caller: str, expected: int) -> None:
    _signed_in(site, as_caller, caller)
    url = path.replace("{sams}", site.scene.egress if "egress" in path else site.scene.done)
    if path.startswith("POST /ui/logout"):
        csrf = ""
        if caller not in ("none", "job"):  # the sign-out form's token, read off a page as a browser would
            found = re.search(r'name="csrf" value="([^"]+)"', as_caller.get("/ui/nodes").text)
            assert found is not None
            csrf = found.group(1)
        response = as_caller.post("/ui/logout", data={"csrf": csrf}, headers={"Origin": "http://testserver"})
    elif path.startswith("POST /ui/login"):
        token = site.scene.tokens.get(caller, "")
        response = as_caller.post(
            "/ui/login", data={"token": token}, headers={"Origin": "http://evil.example"}
        )
    else:
        response = as_caller.get(url)
    assert response.status_code == expected, response.text[:500]
    if caller in ("none", "job") and expected == 303 and not path.startswith("POST"):
        assert response.headers["location"].startswith("/ui/login")
    if expected == 403 and not path.startswith("POST"):
        assert "you are signed in as" in response.text
    if expected == 200 and path == "/ui/stagings" and caller in ("other", "steward"):
        assert f"/ui/stagings/{site.scene.done}" not in response.text  # not theirs: not listed
    if expected == 200 and path == "/ui/egress" and caller == "other":
        assert f"/ui/egress/{site.scene.egress}" not in response.text


def test_every_ui_route_is_in_the_matrix() -> None:
    routes = {
        (method, route.path)
        for route in pages.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    listed = {("POST", p.split()[1]) if p.startswith("POST") else ("GET", p.split("?")[0]) for p in MATRIX}
    listed = {
        (m, p.replace("{sams}", "{staging_id}" if "stagings" in p else "{egress_id}")) for m, p in listed
    }
    assert routes == listed
