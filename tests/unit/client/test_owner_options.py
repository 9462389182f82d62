"""``stage --owner-pod/--owner-job/--owner-uid/--owner-from-env``: what reaches the service
client, and the mixes refused before anything is sent."""

import uuid

import pytest

from stagegate.owners import OwnerRef
from unit.client.test_service_cli import SERVER, StubService, run, staging
from unit.client.test_service_cli import stub as stub  # the fixture, found by its name

UID = str(uuid.uuid4())
DOWNWARD = {"POD_NAMESPACE": "ml", "POD_NAME": "train-0", "POD_UID": UID}


def submitted_owner(made: list[StubService], *args: str, env: dict[str, str] | None = None) -> object:
    made.append(StubService([staging("pending")]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, *args, env=env)
    assert result.exit_code == 0, result.output
    return made[-1].calls[0][1]["owner"]


def test_the_owner_given_reaches_the_service_client(stub: list[StubService]) -> None:
    assert submitted_owner(stub) is None
    pod = submitted_owner(stub, "--owner-pod", "ml/train-0", "--owner-uid", UID.upper())
    assert pod == OwnerRef("Pod", "ml", "train-0", UID)
    job = submitted_owner(stub, "--owner-job", "ml/train", "--owner-uid", UID)
    assert job == OwnerRef("Job", "ml", "train", UID)
    assert submitted_owner(stub, "--owner-from-env", env=DOWNWARD) == OwnerRef("Pod", "ml", "train-0", UID)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--owner-pod", "ml/train-0"], {}, "needs --owner-uid"),
        (["--owner-uid", UID], {}, "goes with --owner-pod or --owner-job"),
        (["--owner-pod", "ml/a", "--owner-job", "ml/b", "--owner-uid", UID], {}, "give one"),
        (["--owner-pod", "train-0", "--owner-uid", UID], {}, "NAMESPACE/NAME"),
        (["--owner-pod", "ml/../../secrets", "--owner-uid", UID], {}, "not a Kubernetes name"),
        (["--owner-pod", "ml/x", "--owner-uid", "1234"], {}, "not a Kubernetes uid"),
        (["--owner-from-env"], {"POD_NAMESPACE": "ml", "POD_NAME": "train-0"}, "needs POD_UID"),
        (["--owner-from-env", "--owner-uid", UID], DOWNWARD, "leave out --owner-uid"),
    ],
)
def test_an_owner_that_cannot_mean_one_pod_is_a_usage_error(
    stub: list[StubService], monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], says: str
) -> None:
    for name in DOWNWARD:
        monkeypatch.delenv(name, raising=False)
    stub.append(StubService([staging("pending")]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, *args, env=env)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert stub[-1].calls == [], "nothing was sent"


def test_an_owner_is_for_the_service_only(tmp_path: object) -> None:
    result = run("stage", "s3://b/ds", "--to", str(tmp_path), "--owner-pod", "ml/x", "--owner-uid", UID)
    assert result.exit_code == 2
    assert "--owner-pod" in result.stderr and "only to staging onto nodes" in result.stderr
