"""Token list and revoke through the API: nobody sees a secret, a scientist sees and revokes
only their own, and a revoked token is refused from its next request."""

import pytest

from stagegate.ledger import Tokens

from .conftest import USERS, World

pytestmark = pytest.mark.integration


def test_a_list_shows_no_secret_and_only_what_is_yours(world: World) -> None:
    listed = world.get("scientist", "/v1/tokens")
    assert listed.status_code == 200, listed.text
    tokens = listed.json()["tokens"]
    assert {t["user"] for t in tokens} == {USERS["scientist"]}
    assert set(tokens[0]) == {"id", "user", "role", "project", "created_at", "last_used_at", "revoked_at"}
    for secret in world.tokens.values():
        assert secret not in listed.text and secret[3:] not in listed.text
    # The token this request came with was just used.
    assert tokens[0]["last_used_at"] is not None

    everyone = world.get("admin", "/v1/tokens").json()["tokens"]
    assert {t["user"] for t in everyone} == set(USERS.values())
    assert "token_hash" not in world.get("admin", "/v1/tokens").text


def test_revoking_someone_elses_token_is_not_found_and_changes_nothing(world: World) -> None:
    bobs = Tokens(world.ledger).create(USERS["other"], "scientist")
    refused = world.delete("scientist", f"/v1/tokens/{bobs.id}")
    assert refused.status_code == 404
    missing = world.delete("scientist", "/v1/tokens/no-such-token")
    assert refused.json()["detail"] == missing.json()["detail"].replace("no-such-token", bobs.id)
    assert Tokens(world.ledger).authenticate(bobs.token) is not None, "bob's token still works"
    assert bobs.id not in world.get("scientist", "/v1/tokens").text


def test_a_revoked_token_is_refused_from_its_next_request(world: World) -> None:
    spare = Tokens(world.ledger).create(USERS["scientist"], "scientist", "vision")
    headers = {"Authorization": f"Bearer {spare.token}"}
    assert world.client.get("/v1/stagings", headers=headers).status_code == 200
    revoked = world.delete("scientist", f"/v1/tokens/{spare.id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert world.client.get("/v1/stagings", headers=headers).status_code == 401
    assert world.delete("scientist", f"/v1/tokens/{spare.id}").status_code == 404, "revoked already"
    shown = world.get("scientist", "/v1/tokens", revoked=True).json()["tokens"]
    assert [t["id"] for t in shown if t["revoked_at"]] == [spare.id]
    assert spare.id not in world.get("scientist", "/v1/tokens").text
