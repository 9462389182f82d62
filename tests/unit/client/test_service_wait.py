"""``ServiceClient.wait``: the polling loop alone, over httpx.MockTransport answering a scripted
sequence of states (the end-to-end tests against the real service are elsewhere)."""

from collections.abc import Callable, Iterable

import httpx
import pytest

from stagegate.client.errors import ServiceUnavailableError, WaitTimeoutError
from stagegate.client.service_client import ServiceClient
from stagegate.client.service_models import Staging
from stagegate.errors import InvalidInputError, NotFoundError
from unit.client.service_samples import staging_json

TOKEN = "sg_test-token"


class Script:
    """Answers GET /v1/stagings/st-1 with the next state of a list (the last one repeats);
    an exception in the list is raised instead, as a transport would."""

    def __init__(self, steps: Iterable[str | Exception]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if request.url.path != "/v1/stagings/st-1":
            return httpx.Response(404, json={"detail": "no such staging"})
        return httpx.Response(200, json=staging_json(step))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def client_for(script: Callable[[httpx.Request], httpx.Response], time: FakeTime) -> ServiceClient:
    return ServiceClient(
        "http://stagegate.test",
        TOKEN,
        transport=httpx.MockTransport(script),
        sleep=time.sleep,
        clock=time.clock,
    )


@pytest.mark.parametrize("final", ["ready", "failed", "denied", "released"])
def test_wait_returns_at_the_first_terminal_state(final):
    script, time = (
        Script(["pending", "planning", "transferring", "transferring", final, "pending"]),
        FakeTime(),
    )
    seen: list[str] = []
    with client_for(script, time) as client:
        staging = client.wait("st-1", on_update=lambda s: seen.append(s.state), poll=0.5)
    assert staging.state == final
    assert seen == ["pending", "planning", "transferring", "transferring", final]
    assert time.sleeps == [0.5] * 4  # no sleep after the last look
    assert len(script.requests) == 5


def test_wait_on_a_finished_staging_returns_at_once():
    script, time = Script(["ready"]), FakeTime()
    with client_for(script, time) as client:
        assert client.wait("st-1").state == "ready"
    assert time.sleeps == []


def test_every_poll_is_authenticated():
    script, time = Script(["planning", "ready"]), FakeTime()
    with client_for(script, time) as client:
        client.wait("st-1")
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in script.requests)
    assert all(r.method == "GET" for r in script.requests)


def test_wait_times_out_with_the_last_state_seen():
    script, time = Script(["planning", "transferring"]), FakeTime()
    with client_for(script, time) as client, pytest.raises(WaitTimeoutError) as info:
        client.wait("st-1", poll=2.0, timeout=5.0)
    assert isinstance(info.value.staging, Staging)
    assert info.value.staging.state == "transferring"
    assert "still transferring" in str(info.value)
    assert time.sleeps == [2.0, 2.0, 1.0]  # the last sleep ends at the deadline, not after it
    assert time.now == 5.0


def test_a_dropped_connection_while_polling_is_retried():
    script = Script(["transferring", httpx.ReadError("connection reset"), "ready"])
    time = FakeTime()
    with client_for(script, time) as client:
        assert client.wait("st-1", poll=1.0).state == "ready"
    assert time.sleeps == [1.0, 0.5]  # the poll interval, then one backoff before the retry


def test_a_server_that_stays_away_ends_the_wait():
    script, time = Script(["transferring", httpx.ConnectError("connection refused")]), FakeTime()
    with client_for(script, time) as client, pytest.raises(ServiceUnavailableError) as info:
        client.wait("st-1", poll=1.0)
    assert "http://stagegate.test" in str(info.value)
    assert time.sleeps == [1.0, 0.5, 1.0, 2.0]  # poll, then three retries with doubling backoff


def test_a_staging_that_does_not_exist():
    script, time = Script(["ready"]), FakeTime()
    with client_for(script, time) as client, pytest.raises(NotFoundError):
        client.wait("st-404")


def test_poll_must_be_positive():
    with client_for(Script(["ready"]), FakeTime()) as client, pytest.raises(InvalidInputError):
        client.wait("st-1", poll=0)


def egress_client(states: list[str], time: FakeTime) -> ServiceClient:
    def answer(request: httpx.Request) -> httpx.Response:
        state = states.pop(0) if len(states) > 1 else states[0]
        return httpx.Response(200, json={"id": "eg-1", "state": state, "errors": [], "reasons": []})

    return client_for(answer, time)


def test_wait_egress_polls_until_the_egress_ends() -> None:
    time = FakeTime()
    with egress_client(["pending", "running", "running", "completed"], time) as client:
        assert client.wait_egress("eg-1", poll=0.5)["state"] == "completed"
    assert time.sleeps == [0.5, 0.5, 0.5]


def test_wait_egress_gives_up_after_the_timeout_and_says_it_goes_on() -> None:
    time = FakeTime()
    with (
        egress_client(["running"], time) as client,
        pytest.raises(WaitTimeoutError, match="continues") as info,
    ):
        client.wait_egress("eg-1", poll=1.0, timeout=2.5)
    assert info.value.staging is None and time.now == 2.5
