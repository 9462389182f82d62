"""Pins that end with their pod: the real reconciler, a real ledger (PostgreSQL and SQLite) and
a Kubernetes API on loopback (``integration.kube_api``) speaking the two paths the check reads.

A staging owned by a Pod or Job is released once the API says the owner is gone (404, another
uid under the name, ended), audited as ``stage.released`` with the reason and the owner; while
the API cannot tell (down, refusing, answering as something else) the pins are kept. Naming
someone else's pod binds only one's own staging to it.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration.api.conftest import BROKER_URL, closed_port
from integration.kube_api import FakeKubeApi, kube_api
from integration.ledger.test_pins import OTHER, WHO, ready_staging
from integration.postgres import fresh_pg_database
from stagegate.ledger import AuditTrail, Ledger, Nodes, StagingRequests, StagingViews, open_ledger
from stagegate.ledger.owners import PinOwners
from stagegate.owners import OwnerRef
from stagegate.policies import Policy
from stagegate.queues import Dispatcher, make_celery
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.owner_checks import KubernetesOwners
from stagegate.workers.reconciler import reconcile_once
from stagegate.workers.settings import WorkerSettings

NS = "ml"
OTHER_DIGEST = "d" * 64


@pytest.fixture(params=("postgresql", "sqlite"))
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
            yield opened
        return
    pg_admin = request.getfixturevalue("pg_admin")
    with fresh_pg_database(pg_admin, migrated=True) as url, open_ledger(url) as opened:
        yield opened


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with kube_api() as served:
        yield served


@pytest.fixture
def token_file(tmp_path: Path, api: FakeKubeApi) -> Path:
    path = tmp_path / "serviceaccount-token"
    path.write_text(api.token + "\n")
    return path


def context(
    ledger: Ledger, tmp_path: Path, api_url: str, token_file: Path, interval: float = 0.0
) -> NodeContext:
    """The node worker's context as ``run_worker`` builds it, asking ``api_url`` about owners
    (``interval`` 0: every pass asks)."""
    settings = WorkerSettings(
        "a",
        tmp_path / "root",
        1 << 40,
        kube_api=api_url,
        kube_token_file=token_file,
        owner_check_seconds=interval,
    )
    checker = KubernetesOwners.for_worker(settings)
    assert checker is not None
    return NodeContext(
        settings, ledger, Policy.default(), Dispatcher(make_celery(BROKER_URL)), owner_checker=checker
    )


def checks(ctx: NodeContext, verdict: str) -> float:
    return (
        ctx.metrics.registry.get_sample_value(
            "stagegate_worker_owner_checks_total", {"node": "a", "verdict": verdict}
        )
        or 0.0
    )


def state(ledger: Ledger, job: str) -> str:
    return StagingViews(ledger).view(job).state


def test_a_pod_that_is_gone_releases_its_staging_audited_and_not_before(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    uid = api.add_pod(NS, "train-1")
    owner = OwnerRef("Pod", NS, "train-1", uid)
    job = ready_staging(ledger, owner=owner)
    ctx = context(ledger, tmp_path, api.url, token_file)

    assert reconcile_once(ctx) == 0
    assert state(ledger, job) == "ready", "the pod runs: its data stays"
    assert checks(ctx, "present") == 1
    assert api.requests == [("GET", f"/api/v1/namespaces/{NS}/pods/train-1")], "only its own pod is read"

    api.delete("Pod", NS, "train-1")
    reconcile_once(ctx)
    assert state(ledger, job) == "released"
    assert checks(ctx, "gone") == 1
    (event,) = AuditTrail(ledger).query(action="stage.released")
    assert event.details["by"] == "stagegate" and event.details["was"] == "ready"
    assert event.details["owner"] == owner.to_json()
    assert "Pod ml/train-1" in str(event.details["reason"]) and "404 NotFound" in str(event.details["reason"])
    (node,) = Nodes(ledger).all()
    assert node.pinned == 0 and node.datasets[0].pins == 0, "evictable once released"

    reconcile_once(ctx)  # nothing owned is held any more: the API is not asked again
    assert len(api.requests) == 2
    (requested,) = AuditTrail(ledger).query(action="stage.requested")
    assert requested.details["owner"] == owner.to_json(), "the trail says who owned it from the start"


def test_a_pod_recreated_under_the_same_name_is_not_the_owner(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    uid = api.add_pod(NS, "train-1")
    job = ready_staging(ledger, owner=OwnerRef("Pod", NS, "train-1", uid))
    ctx = context(ledger, tmp_path, api.url, token_file)
    api.delete("Pod", NS, "train-1")
    new_uid = api.add_pod(NS, "train-1")  # a controller made a new one before the check ran

    reconcile_once(ctx)
    assert state(ledger, job) == "released"
    (event,) = AuditTrail(ledger).query(action="stage.released")
    assert f"another Pod (uid {new_uid})" in str(event.details["reason"])


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_pod_that_ended_releases_its_staging(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path, phase: str
) -> None:
    uid = api.add_pod(NS, "train-1", phase=phase)
    job = ready_staging(ledger, owner=OwnerRef("Pod", NS, "train-1", uid))
    reconcile_once(context(ledger, tmp_path, api.url, token_file))
    assert state(ledger, job) == "released"
    (event,) = AuditTrail(ledger).query(action="stage.released")
    assert f"phase is {phase}" in str(event.details["reason"])


def test_a_job_owns_its_staging_until_it_completes_or_is_deleted(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    running = OwnerRef("Job", NS, "train", api.add_job(NS, "train"))
    done = OwnerRef("Job", NS, "done", api.add_job(NS, "done", condition="Complete"))
    deleted = OwnerRef("Job", NS, "deleted", api.add_job(NS, "deleted"))
    api.delete("Job", NS, "deleted")
    kept = ready_staging(ledger, owner=running)
    completed = ready_staging(ledger, owner=done, digest="1" * 64)
    gone = ready_staging(ledger, owner=deleted, digest="2" * 64)

    reconcile_once(context(ledger, tmp_path, api.url, token_file))
    assert (state(ledger, kept), state(ledger, completed), state(ledger, gone)) == (
        "ready",
        "released",
        "released",
    )
    assert sorted(path for _, path in api.requests) == [
        f"/apis/batch/v1/namespaces/{NS}/jobs/{name}" for name in ("deleted", "done", "train")
    ]


def test_an_api_that_cannot_tell_never_releases(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    """Down, refusing the token, a 404 from something that is not the API, nothing listening, no
    token file: each keeps the pins, counted as unknown, and the last error is kept."""
    uid = api.add_pod(NS, "train-1")
    job = ready_staging(ledger, owner=OwnerRef("Pod", NS, "train-1", uid))
    api.delete("Pod", NS, "train-1")  # gone, but only an API that answers can say so
    ctx = context(ledger, tmp_path, api.url, token_file)

    api.outage = 503
    reconcile_once(ctx)
    api.outage = None
    token_file.write_text("a-stale-token")  # 401
    reconcile_once(ctx)
    token_file.write_text(api.token)
    for wrong in (
        context(ledger, tmp_path, api.url + "/some/proxy", token_file),  # its 404s name no pod
        context(ledger, tmp_path, f"http://127.0.0.1:{closed_port()}", token_file),
        context(ledger, tmp_path, api.url, tmp_path / "no-such-token"),
    ):
        reconcile_once(wrong)
        assert checks(wrong, "unknown") == 1 and checks(wrong, "gone") == 0
    assert checks(ctx, "unknown") == 2
    assert state(ledger, job) == "ready", "an outage never frees a running job's data"
    assert AuditTrail(ledger).query(action="stage.released") == []
    with ledger.read_session() as session:
        failures, error = session.execute(sa.text("SELECT failures, last_error FROM pin_owners")).one()
    assert failures == 5 and "no-such-token" in error
    assert api.token not in error

    reconcile_once(ctx)  # the API answers again
    assert state(ledger, job) == "released"


def test_each_owner_is_asked_once_per_interval_however_many_reconcilers_run(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    uid = api.add_pod(NS, "train-1")
    job = ready_staging(ledger, owner=OwnerRef("Pod", NS, "train-1", uid))
    api.delete("Pod", NS, "train-1")
    workers = [context(ledger, tmp_path, api.url, token_file, interval=60) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reconcile_once, workers))
    assert len(api.requests) == 1, api.requests
    assert state(ledger, job) == "released"
    assert len(AuditTrail(ledger).query(action="stage.released")) == 1


def test_naming_someone_elses_pod_binds_only_ones_own_staging(
    ledger: Ledger, tmp_path: Path, api: FakeKubeApi, token_file: Path
) -> None:
    """Bob names Alice's running pod: with a made-up uid his own staging goes at once; with its
    real uid his lives as long as her pod. Alice's staging is never touched by either."""
    uid = api.add_pod(NS, "alice-train")
    alices = ready_staging(ledger, owner=OwnerRef("Pod", NS, "alice-train", uid))
    guessed = ready_staging(
        ledger,
        who=OTHER,
        owner=OwnerRef("Pod", NS, "alice-train", "0" * 8 + "-0000-4000-8000-" + "0" * 12),
        digest=OTHER_DIGEST,
    )
    ctx = context(ledger, tmp_path, api.url, token_file)
    reconcile_once(ctx)
    assert (state(ledger, alices), state(ledger, guessed)) == ("ready", "released")
    (alice_dataset,) = [d for d in Nodes(ledger).all()[0].datasets if d.pins]
    assert alice_dataset.pins == 1

    borrowed = ready_staging(
        ledger, who=OTHER, owner=OwnerRef("Pod", NS, "alice-train", uid), digest="3" * 64
    )
    StagingRequests(ledger).release(WHO, alices)  # Alice is done; her pod is not
    reconcile_once(ctx)
    assert state(ledger, borrowed) == "ready", "her pod still runs"
    assert PinOwners(ledger).of([alices, borrowed])[borrowed].uid == uid
    released = [e.job_id for e in AuditTrail(ledger).query(action="stage.released")]
    assert sorted(released) == sorted([guessed, alices])
