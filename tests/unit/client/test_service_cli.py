"""The service commands' arguments, output and exit codes, through click's CliRunner, with
the service client replaced by a stub that returns typed answers (no HTTP at all)."""

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from stagegate.client import cli as cli_module
from stagegate.client import context
from stagegate.client.cli import cli
from stagegate.client.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServiceUnavailableError,
    StagingDeniedError,
)
from stagegate.client.service_models import Node, Staging
from stagegate.client.stage_command import choose_mode
from unit.client.service_samples import node_json, node_part, staging_json

SERVER = "http://stagegate.test"


@pytest.fixture(autouse=True)
def no_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (context.SERVER_ENV, context.TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)


def staging(state: str, **over: Any) -> Staging:
    return Staging.from_json(staging_json(state, **over))


class StubService:
    """Stands in for ServiceClient: records calls, answers from a script."""

    def __init__(
        self,
        states: Sequence[Staging] = (),
        submit_error: Exception | None = None,
        interrupt: bool = False,
        nodes: Sequence[Node] = (),
        error: Exception | None = None,
    ) -> None:
        self.states = list(states)
        self.submit_error = submit_error
        self.interrupt = interrupt
        self.node_list = list(nodes)
        self.error = error
        self.calls: list[tuple[str, Any]] = []

    def __enter__(self) -> "StubService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append(("close", None))

    def submit_staging(self, source: str, nodes: Sequence[str], **kw: Any) -> Staging:
        self.calls.append(("submit", {"source": source, "nodes": list(nodes), **kw}))
        if self.submit_error:
            raise self.submit_error
        return self.states[0]

    def staging(self, id: str) -> Staging:
        self.calls.append(("staging", id))
        return self.states[-1]

    def wait(
        self, id: str, on_update: Any = None, poll: float = 1.0, timeout: float | None = None
    ) -> Staging:
        self.calls.append(("wait", id))
        for s in self.states[1:]:
            if on_update:
                on_update(s)
        if self.interrupt:
            raise KeyboardInterrupt
        return self.states[-1]

    def release(self, id: str) -> Staging:
        self.calls.append(("release", id))
        return self.states[-1]

    def nodes(self) -> list[Node]:
        if self.error:
            raise self.error
        return self.node_list


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[StubService]]:
    """``stub.append(StubService(...))`` sets what the next command talks to."""
    made: list[StubService] = []
    servers: list[str | None] = []

    def service(server: str | None) -> StubService:
        servers.append(server)
        return made[-1]

    monkeypatch.setenv(context.TOKEN_ENV, "sg_test")
    monkeypatch.setattr(context, "service", service)
    yield made
    assert all(s == SERVER for s in servers)


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


# -- choosing the mode -----------------------------------------------------------------------


def test_to_with_node_is_refused(tmp_path: Path) -> None:
    # A path of this test's own: a file at /tmp/x (another program's) made --to's own check
    # answer first, and the test failed without saying anything about the combination.
    to = str(tmp_path / "x")
    result = run("stage", "s3://b/ds", "--to", to, "--node", "gpu-01", "--server", SERVER)
    assert result.exit_code == 2
    assert "--to" in result.stderr and "--node" in result.stderr and "cannot be combined" in result.stderr


def test_service_mode_needs_a_token():
    result = run("stage", "s3://b/ds", "--node", "gpu-01", env={"STAGEGATE_URL": SERVER})
    assert result.exit_code == 2
    assert "set STAGEGATE_TOKEN" in result.stderr


def test_the_token_is_not_a_flag():
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, "--token", "sg_x")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_node_needs_a_server():
    result = run("stage", "s3://b/ds", "--node", "gpu-01", env={"STAGEGATE_TOKEN": "sg_x"})
    assert result.exit_code == 2
    assert "--server URL or set STAGEGATE_URL" in result.stderr


def test_bad_mode():
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--mode", "scatter", "--server", SERVER)
    assert result.exit_code == 2
    assert "'scatter' is not one of 'replicate', 'shard'" in result.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--wait"], "--wait"),
        (["--idempotency-key", "k"], "--idempotency-key"),
        (["--mode", "shard"], "--mode"),
        (["--server", SERVER], "--server"),
    ],
)
def test_service_options_are_refused_with_to(tmp_path: Path, extra: list[str], named: str):
    result = run("stage", str(tmp_path), "--to", str(tmp_path / "d"), *extra)
    assert result.exit_code == 2
    assert named in result.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--concurrency", "4"], "--concurrency applies only to staging here"),
        (["--policy", "p.yaml", "--bandwidth", "1MB"], "--policy, --bandwidth apply only to staging here"),
        (["--durability", "file"], "--durability"),
    ],
)
def test_embedded_options_are_refused_with_node(extra: list[str], named: str):
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, *extra)
    assert result.exit_code == 2
    assert named in result.stderr


def test_a_node_twice_is_refused():
    result = run("stage", "s3://b/ds", "--node", "a", "--node", "b", "--node", "a", "--server", SERVER)
    assert result.exit_code == 2
    assert "--node given more than once for: a" in result.stderr


def test_at_most_64_nodes():
    nodes = [arg for i in range(65) for arg in ("--node", f"n{i}")]
    result = run("stage", "s3://b/ds", *nodes, "--server", SERVER)
    assert result.exit_code == 2
    assert "at most 64 nodes" in result.stderr


def test_neither_to_nor_node():
    assert "Missing option '--to'" in run("stage", "s3://b/ds").stderr
    with_server = run("stage", "s3://b/ds", "--server", SERVER)
    assert with_server.exit_code == 2
    assert "--node NAME" in with_server.stderr


def test_choose_mode():
    to = Path("/tmp/x")
    assert choose_mode(to, (), None, False, set()) == "embedded"
    # STAGEGATE_URL in the environment does not turn --to into a request to the service
    assert choose_mode(to, (), SERVER, False, {"destination"}) == "embedded"
    assert choose_mode(None, ("gpu-01",), SERVER, False, {"nodes"}) == "service"
    assert choose_mode(None, ("gpu-01",), SERVER, True, {"nodes", "server", "wait", "mode"}) == "service"
    with pytest.raises(click.UsageError):
        choose_mode(to, (), SERVER, True, {"destination", "server"})


@pytest.mark.parametrize("command", [["status", "st-1"], ["release", "st-1"], ["nodes"]])
def test_every_service_command_needs_a_server_and_a_token(command: list[str]):
    no_server = run(*command, env={"STAGEGATE_TOKEN": "sg_x"})
    assert no_server.exit_code == 2 and "STAGEGATE_URL" in no_server.stderr
    no_token = run(*command, "--server", SERVER)
    assert no_token.exit_code == 2 and "STAGEGATE_TOKEN" in no_token.stderr


# -- stage on the service ----------------------------------------------------------------------


def test_submit_without_wait_prints_id_and_state(stub: list[StubService]):
    stub.append(StubService([staging("pending")]))
    result = run(
        "stage", "s3://b/ds", "--node", "gpu-01", "--node", "gpu-02", "--mode", "shard",
        "--job", "train-42", "--idempotency-key", "k1", "--server", SERVER,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "st-1 pending\n"
    assert "stagegate status st-1 --watch" in result.stderr
    submitted = stub[0].calls[0]
    assert submitted == (
        "submit",
        {
            "source": "s3://b/ds",
            "nodes": ["gpu-01", "gpu-02"],
            "mode": "shard",
            "job": "train-42",
            "idempotency_key": "k1",
            "pin_ttl": None,
            "include": (),
            "exclude": (),
            "owner": None,
        },
    )
    assert ("close", None) in stub[0].calls


def test_submit_json_and_the_default_mode(stub: list[StubService]):
    stub.append(StubService([staging("pending")]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--json", env={"STAGEGATE_URL": SERVER})
    assert result.exit_code == 0
    assert json.loads(result.stdout) == staging_json("pending")
    assert stub[0].calls[0][1]["mode"] == "replicate"


def test_denied_at_submit_exits_3_with_the_reasons(stub: list[StubService]):
    denied = staging("denied", reasons=["val/p.csv is confidential"])
    stub.append(StubService(submit_error=StagingDeniedError("denied", denied, denied.reasons)))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER)
    assert result.exit_code == 3
    assert "staging st-1 was denied by the policy" in result.stderr
    assert "  val/p.csv is confidential" in result.stderr
    as_json = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["reasons"] == ["val/p.csv is confidential"]


def test_an_idempotent_replay_of_a_denied_staging_exits_3(stub: list[StubService]):
    stub.append(StubService([staging("denied", reasons=["r"])]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, "--idempotency-key", "k")
    assert result.exit_code == 3
    assert result.stdout == "st-1 denied\n"
    assert "  r" in result.stderr


def test_wait_until_ready(stub: list[StubService]):
    ready_nodes = [node_part("gpu-01", "ready", path="/nvme/a"), node_part("gpu-02", "ready", path="/nvme/a")]
    states = [
        staging("pending"),
        staging("planning"),
        staging("transferring"),
        staging("ready", nodes=ready_nodes),
    ]
    stub.append(StubService(states))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--node", "gpu-02", "--wait", "--server", SERVER)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("staging st-1: ready\n")
    assert "nodes     2/2 ready" in result.stdout
    for line in ("staging st-1: planning", "staging st-1: transferring", "  gpu-01: ready at /nvme/a"):
        assert line in result.stderr


def done(state: str = "ready") -> Staging:
    nodes = [node_part(n, "ready", files_done=10, bytes_done=1000) for n in ("gpu-01", "gpu-02")]
    progress = {"files_done": 20, "files_total": 20, "bytes_done": 2000, "bytes_total": 2000}
    return staging(state, nodes=nodes, progress=progress)


def test_wait_with_a_progress_bar(stub: list[StubService], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "200")
    stub.append(StubService([staging("pending"), staging("transferring"), done()]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--progress", "--server", SERVER)
    assert result.exit_code == 0
    bars = [part.split("\n")[0] for part in result.stderr.split("\r")[1:]]
    assert len(bars) == 2
    assert " 25.0%" in bars[0] and "100 B/s" in bars[0] and bars[0].endswith("nodes 0/2 ready")
    assert "100.0%" in bars[1] and bars[1].endswith("nodes 2/2 ready")


def test_no_bar_for_a_staging_that_was_never_seen_transferring(
    stub: list[StubService], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COLUMNS", "200")
    stub.append(StubService([staging("pending"), done()]))  # a cache hit: ready at the next look
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--progress", "--server", SERVER)
    assert result.exit_code == 0
    assert "\r" not in result.stderr


@pytest.mark.parametrize(("final", "code"), [("failed", 1), ("released", 1), ("denied", 3)])
def test_wait_exit_codes(stub: list[StubService], final: str, code: int):
    last = staging(final, errors=["gpu-01: disk full"] if final == "failed" else [])
    stub.append(StubService([staging("pending"), last]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--server", SERVER)
    assert result.exit_code == code
    assert f"stagegate: staging st-1 {'was denied' if final == 'denied' else final}" in result.stderr
    if final == "failed":
        assert "  gpu-01: disk full" in result.stderr


def test_wait_json_prints_only_the_final_staging(stub: list[StubService]):
    stub.append(StubService([staging("pending"), staging("transferring"), staging("ready")]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--json", "--server", SERVER)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["state"] == "ready"


def test_ctrl_c_while_waiting_says_the_staging_goes_on(stub: list[StubService]):
    stub.append(StubService([staging("pending"), staging("transferring")], interrupt=True))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--server", SERVER)
    assert result.exit_code == 130
    assert "staging st-1 continues on the service" in result.stderr
    assert "stagegate status st-1 --watch" in result.stderr
    assert "stagegate release st-1" in result.stderr
    assert not any(name == "release" for name, _ in stub[0].calls)


# -- status, release, nodes --------------------------------------------------------------------


def test_status_once(stub: list[StubService]):
    stub.append(StubService([staging("failed", errors=["boom"])]))
    result = run("status", "st-1", "--server", SERVER)
    assert result.exit_code == 0  # the question was answered; --watch reports the outcome
    assert result.stdout.startswith("staging st-1: failed\n")
    assert "    boom" in result.stdout
    as_json = run("status", "st-1", "--json", "--server", SERVER)
    assert json.loads(as_json.stdout)["errors"] == ["boom"]


def test_status_watch_json_is_one_line_per_change(stub: list[StubService]):
    stub.append(
        StubService([staging("pending"), staging("planning"), staging("planning"), staging("denied")])
    )
    result = run("status", "st-1", "--watch", "--json", "--server", SERVER)
    assert result.exit_code == 3
    assert [json.loads(line)["state"] for line in result.stdout.splitlines()] == ["planning", "denied"]


def test_status_watch_ends_with_the_summary(stub: list[StubService]):
    stub.append(StubService([staging("pending"), staging("transferring"), staging("ready")]))
    result = run("status", "st-1", "--watch", "--server", SERVER)
    assert result.exit_code == 0
    assert result.stdout.startswith("staging st-1: ready\n")
    assert "staging st-1: transferring" in result.stderr


def test_release(stub: list[StubService]):
    stub.append(StubService([staging("released")]))
    result = run("release", "st-1", "--server", SERVER)
    assert result.exit_code == 0
    assert result.stdout == "staging st-1: released\n"
    assert ("release", "st-1") in stub[0].calls


def test_nodes(stub: list[StubService]):
    stub.append(StubService(nodes=[Node.from_json(node_json())]))
    result = run("nodes", "--server", SERVER)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split()[:2] == ["NODE", "ALIVE"]
    assert result.stdout.splitlines()[1].split()[:2] == ["gpu-01", "yes"]
    as_json = run("nodes", "--json", "--server", SERVER)
    assert json.loads(as_json.stdout) == {"nodes": [node_json()]}


# -- the entry point's mapping of errors to exit codes -----------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "prefix"),
    [
        (AuthenticationError("the service refused the token"), 2, "stagegate: error:"),
        (PermissionDeniedError("not permitted: role job"), 3, "stagegate: denied:"),
        (ServiceUnavailableError(f"cannot reach the stagegate service at {SERVER}"), 1, "stagegate: failed:"),
    ],
)
def test_main_maps_service_errors_to_exit_codes(
    stub: list[StubService],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    prefix: str,
):
    stub.append(StubService(error=error))
    monkeypatch.setattr(sys, "argv", ["stagegate", "nodes", "--server", SERVER])
    with pytest.raises(SystemExit) as info:
        cli_module.main()
    assert info.value.code == code
    err = capsys.readouterr().err
    assert err == f"{prefix} {error}\n"
    assert "Traceback" not in err


# -- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        (["stage"], ["STAGEGATE_URL", "STAGEGATE_TOKEN", "--node", "--to", "Exit codes"]),
        (["status"], ["STAGEGATE_URL", "STAGEGATE_TOKEN", "--watch", "Exit codes"]),
        (["release"], ["STAGEGATE_URL", "STAGEGATE_TOKEN"]),
        (["nodes"], ["STAGEGATE_URL", "STAGEGATE_TOKEN", "--json"]),
        (["token", "create"], ["STAGEGATE_DATABASE_URL", "cannot be shown again", "--role"]),
        (["serve"], ["STAGEGATE_DATABASE_URL", "STAGEGATE_BROKER_URL", "--port"]),
        (["worker"], ["STAGEGATE_BROKER_URL", "AWS_", "--capacity", "500G"]),
        ([], ["Exit codes", "STAGEGATE_TOKEN"]),
    ],
)
def test_help_explains_each_command(command: list[str], mentions: list[str]):
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for word in mentions:
        assert word in text, (command, word)


def planning(objects: int, nbytes: int) -> Staging:
    return staging("planning", progress={"listed_objects": objects, "listed_bytes": nbytes})


def test_wait_shows_how_far_planning_has_listed(stub: list[StubService], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "200")
    stub.append(StubService([staging("pending"), planning(4000, 5_000_000), staging("transferring"), done()]))
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--progress", "--server", SERVER)
    assert result.exit_code == 0, result.output
    drawn = [part.split("\n")[0].strip() for part in result.stderr.split("\r")]
    assert "listing the source: 4000 objects, 5.0 MB" in drawn


def test_wait_json_progress_is_json_lines_with_the_listing_and_the_summary_last(
    stub: list[StubService], monkeypatch: pytest.MonkeyPatch
):
    stub.append(StubService([staging("pending"), planning(4000, 5_000_000), staging("transferring"), done()]))
    result = run(
        "stage", "s3://b/ds", "--node", "gpu-01", "--wait", "--json", "--progress", "--server", SERVER
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in lines] == ["listing", "progress", "progress", "summary"]
    assert lines[0] == {"event": "listing", "objects": 4000, "bytes": 5_000_000, "done": False}
    assert lines[-1]["state"] == "ready"
    assert lines[2]["files_done"] == 20 and lines[2]["rate_bytes_per_s"] == 100


@pytest.mark.parametrize("count", ["0", "-1", "100000", "two"])
def test_processes_out_of_range_is_refused_before_anything_runs(count, tmp_path):
    result = run("stage", str(tmp_path), "--to", str(tmp_path / "d"), "--processes", count)
    assert result.exit_code == 2 and "--processes" in result.stderr
    assert not (tmp_path / "d").exists()


def test_processes_is_not_a_service_flag():
    """Copy processes are the node operator's (STAGEGATE_COPY_PROCESSES), not a requester's."""
    result = run("stage", "s3://b/ds", "--node", "gpu-01", "--server", SERVER, "--processes", "8")
    assert result.exit_code == 2 and "--processes" in result.stderr
