"""``stagegate.Client`` against a real service: ``stagegate serve``, ``stagegate worker``,
Redis and PostgreSQL on loopback (the fixtures of tests/integration/service)."""

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stagegate
from integration.helpers import payload
from integration.service.cluster import iter_files
from stagegate.ledger import AuditTrail

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "train_with_api.py"


def test_stage_wait_list_release_with_the_environments_server_and_token(
    start_cluster: Any, dataset: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = start_cluster({"a": None, "b": None})
    data = {f"f{i:02d}.bin": payload(f"api{i}", 40_000) for i in range(12)}
    source = dataset("api", data)
    monkeypatch.setenv("STAGEGATE_URL", cluster.api_url)
    monkeypatch.setenv("STAGEGATE_TOKEN", cluster.token("gina", "scientist", "nlp"))
    seen: list[stagegate.Progress] = []

    with stagegate.Client(poll=0.2) as service:
        staging = service.stage(source, nodes=["a", "b"], job="run-7", pin_ttl=3600, progress=seen.append)

        assert isinstance(staging, stagegate.Staging) and staging.state == "ready"
        for node in staging.nodes:
            assert node.path is not None
            assert sorted(p.name for p in iter_files(Path(node.path))) == sorted(data)
        assert staging.pin is not None and staging.pin.ttl_seconds == 3600
        pairs = [(p.files_done, p.bytes_done) for p in seen]
        assert pairs and all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(pairs))
        assert seen[-1].files_done == seen[-1].files_total and seen[-1].bytes_done == seen[-1].bytes_total

        assert service.status(staging.id).state == "ready"
        assert service.wait(staging.id).id == staging.id  # an ended staging: at once
        assert staging.id in [s.id for s in service.list()]
        assert service.renew(staging.id, 7200).pin.ttl_seconds == 7200  # type: ignore[union-attr]
        assert service.release(staging.id).state == "released"
        assert service.status(staging.id).state == "released"
        with pytest.raises(stagegate.StagingFailedError, match="released") as ended:
            service.wait(staging.id)
        assert ended.value.staging.state == "released"


def test_submit_without_waiting_then_wait(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("later", {"x.bin": payload("x", 10_000)})
    with stagegate.Client(cluster.api_url, cluster.token("ivy", "scientist")) as service:
        submitted = service.stage(source, nodes=["a"], wait=False)
        assert submitted.state != "denied"
        assert service.wait(submitted.id, timeout=60).state == "ready"


def test_the_example_script_stages_trains_and_releases(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    data = {f"f{i}.bin": payload(f"ex{i}", 5_000) for i in range(4)}
    source = dataset("example", data)
    token = cluster.token("ivy", "scientist")
    env = {**cluster.env, "STAGEGATE_URL": cluster.api_url, "STAGEGATE_TOKEN": token}
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), source, "--node", "a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr + cluster.logs()
    assert f"trained on {sum(map(len, data.values()))} bytes" in run.stdout
    with stagegate.Client(cluster.api_url, token) as service:
        assert [s.state for s in service.list()] == ["released"]


def test_a_denial_raises_with_the_reasons(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("pii", {"p.bin": b"p" * 100}, label="pii")
    service = stagegate.Client(cluster.api_url, cluster.token("hank", "job"))
    with service, pytest.raises(stagegate.StagingDeniedError) as info:
        service.stage(source, nodes=["a"])
    assert isinstance(info.value, PermissionError)
    assert any("pii" in r.lower() for r in info.value.reasons)


def test_someone_elses_staging_is_not_found_as_in_the_cli(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("mine", {"m.bin": payload("m", 10_000)})
    owner, other = cluster.token("olga", "scientist"), cluster.token("mallory", "scientist")
    with stagegate.Client(cluster.api_url, owner) as service:
        staging = service.stage(source, nodes=["a"])

    with stagegate.Client(cluster.api_url, other) as hostile:
        for attempt in (hostile.release, hostile.status, hostile.renew, hostile.wait):
            with pytest.raises(stagegate.NotFoundError) as info:
                attempt(staging.id)
        assert staging.id not in [s.id for s in hostile.list()]
    cli = cluster.cli("release", staging.id, token=other)
    assert cli.returncode == 2 and cli.stderr == f"stagegate: error: {info.value}\n"

    with stagegate.Client(cluster.api_url, owner) as service:
        assert service.status(staging.id).state == "ready"  # untouched


def test_an_auditor_may_read_but_not_release(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("read", {"r.bin": payload("r", 10_000)})
    with stagegate.Client(cluster.api_url, cluster.token("olga", "scientist")) as service:
        staging = service.stage(source, nodes=["a"], job="run-9")
    with stagegate.Client(cluster.api_url, cluster.token("audrey", "auditor")) as auditor:
        assert "stage.completed" in [e.action for e in auditor.audit(job=staging.id)]
        assert auditor.verify_audit()["ok"] is True
        head = auditor.audit_head()
        assert head == "{}:{}".format(*AuditTrail(cluster.ledger).head())
        assert auditor.verify_audit(head=head)["ok"] is True
        assert auditor.verify_audit(head=head.split(":")[0] + ":" + "e" * 64)["ok"] is False
        with pytest.raises(stagegate.InvalidInputError, match="SEQ:HASH"):
            auditor.verify_audit(head="latest")
        assert [row.key for row in auditor.usage(by="user", period="all")] == ["olga"]
        with pytest.raises(stagegate.PermissionDeniedError):
            auditor.release(staging.id)


def test_no_token_or_a_wrong_one_is_an_authentication_error(
    start_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = start_cluster({"a": None})
    monkeypatch.delenv("STAGEGATE_TOKEN", raising=False)
    with stagegate.Client(cluster.api_url) as nobody, pytest.raises(stagegate.AuthenticationError) as info:
        nobody.nodes()
    assert "STAGEGATE_TOKEN" in str(info.value)
    stranger = stagegate.Client(cluster.api_url, "sg_not-a-token")
    with stranger, pytest.raises(stagegate.AuthenticationError, match="refused the token"):
        stranger.list()
    with pytest.raises(stagegate.InvalidInputError, match="not a token"):
        stagegate.Client(cluster.api_url, "")


def make_run(root: Path, label: str = "public") -> Path:
    run = root / "run-7"
    for step in (10, 20):
        files = {
            f"checkpoint-{step}/model.bin": payload(f"m{step}", 50_000 + step),
            f"checkpoint-{step}/trainer_state.json": json.dumps({"global_step": step}).encode(),
            f"checkpoint-{step}/.classification": f"{label}\n".encode(),
        }
        for key, data in files.items():
            (run / key).parent.mkdir(parents=True, exist_ok=True)
            (run / key).write_bytes(data)
    return run


def test_egress_through_the_service_and_someone_elses_run_is_refused(
    start_cluster: Any, s3_client: Any, bucket: str
) -> None:
    cluster = start_cluster({"a": None})
    run = make_run(cluster.roots["a"] / "runs" / "alice")  # the node's runs root, alice's own
    with stagegate.Client(cluster.api_url, cluster.token("alice", "scientist"), poll=0.2) as alice:
        done = alice.egress(str(run), f"s3://{bucket}/models/run-7", node="a", latest=1)
    assert done["state"] == "completed" and done["selected"] == ["checkpoint-20"]
    got = s3_client.get_object(Bucket=bucket, Key="models/run-7/checkpoint-20/model.bin")["Body"].read()
    assert got == payload("m20", 50_020)

    bob = stagegate.Client(cluster.api_url, cluster.token("bob", "scientist"), poll=0.2)
    with bob, pytest.raises(stagegate.EgressFailedError) as info:
        bob.egress(str(run), f"s3://{bucket}/stolen", node="a", latest=1)
    assert info.value.egress["state"] == "failed" and "is not one of your runs" in str(info.value)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="stolen/")

    secret = make_run(cluster.roots["a"] / "runs" / "alice" / "secret", label="confidential")
    alice = stagegate.Client(cluster.api_url, cluster.token("alice", "scientist"), poll=0.2)
    with alice, pytest.raises(stagegate.EgressDeniedError) as denied:
        alice.egress(str(secret), f"s3://{bucket}/leak", node="a", latest=1)
    assert isinstance(denied.value, PermissionError) and "confidential" in str(denied.value)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="leak/")


def test_stage_a_subset_on_the_service(start_cluster: Any, dataset: Any) -> None:
    cluster = start_cluster({"a": None})
    data = {
        "keep/x.bin": payload("x", 10_000),
        "keep/y.log": payload("y", 10_000),
        "drop/z.bin": payload("z", 10_000),
    }
    source = dataset("subset", data)
    with stagegate.Client(cluster.api_url, cluster.token("ivy", "scientist"), poll=0.2) as service:
        # rclone's order: every include rule is tried before any exclude, first match wins, so
        # beside an include an exclude would change nothing: refused before the request is sent.
        with pytest.raises(stagegate.InvalidInputError, match="would change nothing"):
            service.stage(source, nodes=["a"], include=["/keep/**"], exclude=["*.log"])
        staging = service.stage(source, nodes=["a"], include=["/keep/*.bin"])
        (node,) = staging.nodes
        assert node.path is not None
        assert [str(p.relative_to(node.path)) for p in iter_files(Path(node.path))] == ["keep/x.bin"]
        with pytest.raises(stagegate.InvalidInputError, match=r"\.\."):
            service.stage(source, nodes=["a"], include=["../**"])
