"""The owner contract: Kubernetes' own name rules, so the only path the service can be made to
read is one Pod's or one Job's."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.owners import OwnerRef
from stagegate.requests import StagingRequest

# A fixed value, not uuid4(): the parameters below carry it in their ids, which must be the same
# in every process that collects them (pytest-xdist compares them).
UID = "b55e2471-ad4e-4e38-af24-af441e514b37"
ONE_OBJECT = re.compile(
    r"/api/v1/namespaces/[a-z0-9-]+/pods/[a-z0-9.-]+|/apis/batch/v1/namespaces/[a-z0-9-]+/jobs/[a-z0-9.-]+"
)


def test_a_pod_and_a_job_have_their_own_paths() -> None:
    assert OwnerRef("Pod", "ml", "train-0", UID).api_path() == "/api/v1/namespaces/ml/pods/train-0"
    assert OwnerRef("Job", "ml", "a.b", UID).api_path() == "/apis/batch/v1/namespaces/ml/jobs/a.b"
    assert OwnerRef("Pod", "ml", "p", UID.upper()).uid == UID, "uids compare in one case"
    assert OwnerRef.parse("Job", "ml/train", UID) == OwnerRef("Job", "ml", "train", UID)
    owner = OwnerRef("Pod", "ml", "p", UID)
    assert OwnerRef.from_json(owner.to_json()) == owner


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "uid"),
    [
        ("Secret", "ml", "p", UID),
        ("pod", "ml", "p", UID),
        ("Pod", "", "p", UID),
        ("Pod", "ML", "p", UID),
        ("Pod", "a" * 64, "p", UID),
        ("Pod", "ml", "", UID),
        ("Pod", "ml", "..", UID),
        ("Pod", "ml", "a/../b", UID),
        ("Pod", "ml", ".hidden", UID),
        ("Pod", "ml", "a..b", UID),
        ("Pod", "ml", "p?watch=true", UID),
        ("Pod", "ml", "p%2fx", UID),
        ("Pod", "ml", "p\n", UID),
        ("Pod", "ml", "a" * 254, UID),
        ("Pod", "ml", "p", ""),
        ("Pod", "ml", "p", "{" + UID + "}"),
        ("Pod", "ml", "p", UID.replace("-", "")),
        ("Pod", "ml", "p", "urn:uuid:" + UID),
    ],
)
def test_anything_but_a_kubernetes_name_is_refused(kind: str, namespace: str, name: str, uid: str) -> None:
    with pytest.raises(InvalidInputError):
        OwnerRef(kind, namespace, name, uid)  # type: ignore[arg-type]


@given(st.text(max_size=80), st.text(max_size=300), st.sampled_from(["Pod", "Job"]))
def test_whatever_is_accepted_reads_exactly_one_object(namespace: str, name: str, kind: str) -> None:
    try:
        owner = OwnerRef(kind, namespace, name, UID)  # type: ignore[arg-type]
    except InvalidInputError:
        return
    path = owner.api_path()
    assert ONE_OBJECT.fullmatch(path), path
    assert ".." not in path.split("/")


def test_an_owner_is_for_a_service_staging() -> None:
    with pytest.raises(InvalidInputError, match="into a directory has none"):
        StagingRequest("s3://b/ds", destination="/tmp/x", owner=OwnerRef("Pod", "ml", "p", UID))
