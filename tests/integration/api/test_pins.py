"""Pin leases through the API: every staging gets one, a hostile TTL is refused with nothing
recorded, and renewal answers with the new expiry."""

from datetime import datetime, timedelta

import pytest

from stagegate.ledger import AuditTrail

from .conftest import World

pytestmark = pytest.mark.integration

DAY = 86400


def test_a_staging_gets_the_operators_default_lease_or_the_one_it_asks_for(world: World) -> None:
    default = world.post("scientist").json()
    assert default["pin"]["ttl_seconds"] == DAY  # STAGEGATE_PIN_TTL's default
    created = datetime.fromisoformat(default["created_at"])
    expires = datetime.fromisoformat(default["pin"]["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - created <= timedelta(days=1, seconds=1)

    asked = world.post("scientist", pin_ttl_seconds=1800).json()
    assert asked["pin"]["ttl_seconds"] == 1800
    listed = {
        s["id"]: s["pin"]["ttl_seconds"] for s in world.get("scientist", "/v1/stagings").json()["stagings"]
    }
    assert listed == {default["id"]: DAY, asked["id"]: 1800}
    assert world.get("scientist", f"/v1/stagings/{asked['id']}").json()["pin"]["ttl_seconds"] == 1800


@pytest.mark.parametrize(
    ("ttl", "says"),
    [
        (100 * 365 * DAY, "longer than this service allows"),  # a hundred years
        (30, "at least 60 s"),
        (0, "greater than 0"),
        (-5, "greater than 0"),
        ("1e400", "must be a number of seconds"),
    ],
)
def test_a_hostile_ttl_is_refused_and_nothing_is_recorded(world: World, ttl: object, says: str) -> None:
    response = world.post("scientist", pin_ttl_seconds=ttl)
    assert response.status_code in (400, 422), response.text
    assert says in str(response.json()["detail"])
    assert world.get("scientist", "/v1/stagings").json() == {"stagings": []}
    assert AuditTrail(world.ledger).query() == []


def test_renewal_moves_the_expiry_and_refuses_what_it_must(world: World) -> None:
    sams = world.post("scientist", pin_ttl_seconds=600).json()
    renewed = world.client.post(
        f"/v1/stagings/{sams['id']}/renew", json={"pin_ttl_seconds": 7200}, headers=world.headers("scientist")
    )
    assert renewed.status_code == 200, renewed.text
    pin = renewed.json()["pin"]
    assert (pin["ttl_seconds"], pin["renewals"]) == (7200, 1)
    assert datetime.fromisoformat(pin["expires_at"]) > datetime.fromisoformat(sams["pin"]["expires_at"])
    # No body: the TTL it had.
    again = world.client.post(f"/v1/stagings/{sams['id']}/renew", headers=world.headers("scientist"))
    assert again.json()["pin"]["ttl_seconds"] == 7200 and again.json()["pin"]["renewals"] == 2

    too_long = world.client.post(
        f"/v1/stagings/{sams['id']}/renew",
        json={"pin_ttl_seconds": 10 * 365 * DAY},
        headers=world.headers("scientist"),
    )
    assert too_long.status_code == 400 and "STAGEGATE_PIN_TTL_MAX" in too_long.json()["detail"]
    # Someone else's: exactly as if it did not exist.
    assert (
        world.client.post(f"/v1/stagings/{sams['id']}/renew", headers=world.headers("other")).status_code
        == 404
    )

    world.delete("scientist", f"/v1/stagings/{sams['id']}")
    ended = world.client.post(f"/v1/stagings/{sams['id']}/renew", headers=world.headers("scientist"))
    assert ended.status_code == 409 and "stage the dataset again" in ended.json()["detail"]
    assert len(AuditTrail(world.ledger).query(action="stage.renewed")) == 2
