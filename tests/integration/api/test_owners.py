"""Pin owners through the API: a staging may name the Pod or Job it serves, which the response
and the trail then show; a hostile owner (a path for a name, another kind, a uid that is not
one) is refused with nothing recorded, so the service can be made to read no other object."""

import uuid

import pytest

from stagegate.ledger import AuditTrail
from stagegate.ledger.owners import PinOwners

from .conftest import World

pytestmark = pytest.mark.integration

UID = str(uuid.uuid4())
POD = {"kind": "Pod", "namespace": "ml", "name": "train-imagenet-0", "uid": UID}


def test_a_staging_names_its_owner_and_shows_it(world: World) -> None:
    created = world.post("job", owner=POD)
    assert created.status_code in (200, 202), created.text
    staging = created.json()
    assert staging["owner"] == POD
    assert world.get("job", f"/v1/stagings/{staging['id']}").json()["owner"] == POD
    assert [s["owner"] for s in world.get("job", "/v1/stagings").json()["stagings"]] == [POD]
    assert PinOwners(world.ledger).of([staging["id"]])[staging["id"]].uid == UID
    (requested,) = AuditTrail(world.ledger).query(action="stage.requested")
    assert requested.details["owner"] == POD
    plain = world.post("job").json()
    assert plain["owner"] is None, "no owner: only its lease and a release end it"


@pytest.mark.parametrize(
    "owner",
    [
        {**POD, "name": "../../secrets/x"},  # a path, not a name
        {**POD, "name": "a/b"},
        {**POD, "name": "Train"},  # Kubernetes names are lowercase
        {**POD, "namespace": "kube-system/secrets"},
        {**POD, "namespace": "a" * 64},
        {**POD, "kind": "Secret"},  # only a Pod or a Job is ever read
        {**POD, "kind": "ConfigMap"},
        {**POD, "uid": "not-a-uid-but-exactly-36-characters!"},
        {**POD, "uid": "{" + UID[1:-1] + "}"},
        {**POD, "resourceVersion": "1"},  # an unknown field
        {"kind": "Pod", "namespace": "ml", "name": "p"},  # no uid: a recreated pod would pass for it
    ],
)
def test_a_hostile_owner_is_refused_and_nothing_is_recorded(world: World, owner: dict[str, str]) -> None:
    response = world.post("job", owner=owner)
    assert response.status_code in (400, 422), response.text
    assert world.get("job", "/v1/stagings").json() == {"stagings": []}
    assert AuditTrail(world.ledger).query() == []
