"""One plan for many identical requests, and cached datasets whose labels rose, end to end:
the API and real worker processes on loopback, real PostgreSQL and Redis, the loopback S3.

Listings are counted (and, for the killed planner, held) inside the S3 server, which runs in
this test's process: the workers are other processes, so their clients cannot be hooked."""

import collections
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.s3.responses import S3Response
from sqlalchemy import select

from integration.helpers import payload, put_objects
from integration.service.cluster import audit_actions, dump, wait_for
from stagegate.ledger.models import DatasetLabelCheckRow, NodeDatasetRow, PinRow, PlanShareRow, TaskRow
from stagegate.policies import LABEL_FILE_NAME, LABEL_TAG

pytestmark = pytest.mark.integration

FILES = {f"part-{i:02d}.bin": payload(f"p{i}", 2000 + i) for i in range(6)}
# The listings these tests count are the requests' own: no background re-listing of a plan in
# use (workers.plan_recheck) beside them.
REQUESTS_ONLY = {"STAGEGATE_PLAN_KEEP_WARM_SECONDS": "0"}


class Listings:
    """Listings of a dataset (ListObjectsV2 requests) the S3 server answered, by bucket;
    ``hold`` blocks them until ``release`` (a planner stuck in its listing, to be killed there)."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def hold(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listings]:
    seen = Listings()
    original = S3Response.list_objects_v2

    def counted(self: S3Response) -> Any:
        prefix = self.querystring.get("prefix", [""])[0]
        if prefix.rstrip("/").rsplit("/", 1)[-1] == LABEL_FILE_NAME:
            # A probe that no label file above the source is a folder (one key at most): not a
            # listing of the dataset, and made again before READY on every node.
            return original(self)
        seen.count[self.bucket_name] += 1
        seen.entered.set()
        seen.open.wait(60)
        return original(self)

    monkeypatch.setattr(S3Response, "list_objects_v2", counted)
    yield seen
    seen.release()


def submit(cluster: Any, token: str, source: str, nodes: list[str]) -> str:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": nodes})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def event_details(cluster: Any, job_id: str, action: str) -> dict[str, Any]:
    from stagegate.ledger import AuditTrail

    (event,) = [e for e in AuditTrail(cluster.ledger).query(job=job_id) if e.action == action]
    return dict(event.details)


def test_concurrent_identical_requests_list_the_source_once_and_share_the_copy(
    start_cluster, dataset, bucket, listings: Listings
) -> None:
    cluster = start_cluster({"a": None, "b": None}, env=REQUESTS_ONLY)
    source = dataset("ds", FILES)
    users = [cluster.token(f"user{i}", "scientist") for i in range(8)]
    baseline = listings.count[bucket]  # what submission itself asks of S3 (nothing per plan)

    ids = [submit(cluster, token, source, ["a", "b"]) for token in users]
    finals = [cluster.wait_terminal(token, i) for token, i in zip(users, ids, strict=True)]

    assert [f["state"] for f in finals] == ["ready"] * 8, dump(finals) + cluster.logs()
    assert listings.count[bucket] - baseline == 1, (listings.count, cluster.logs())
    # One copy per node, pinned by every request.
    with cluster.ledger.read_session() as session, session.begin():
        datasets = session.scalars(select(NodeDatasetRow)).all()
        pins = session.scalars(select(PinRow)).all()
    assert sorted(d.node for d in datasets) == ["a", "b"] and len({d.digest for d in datasets}) == 1
    assert sorted(p.job_id for p in pins) == sorted(ids * 2)
    # Each request keeps its own story, the followers naming the plan they used.
    leaders = []
    for job_id in ids:
        actions = audit_actions(cluster.ledger, job_id)
        assert actions == ["stage.requested", "policy.allowed", "stage.completed"], actions
        allowed = event_details(cluster, job_id, "policy.allowed")
        assert allowed["highest_label"] == "public"
        if "plan_of" not in allowed:
            leaders.append(job_id)
        else:
            assert allowed["plan_of"] in ids
    assert len(leaders) == 1, leaders


def test_a_request_for_a_fresh_plan_cached_everywhere_is_admitted_at_submission(
    start_cluster, dataset, bucket, listings: Listings
) -> None:
    """The API cuts plans as the workers do (the same policy and batch settings): the second
    request follows the first one's plan in its own submission, no plan task, no listing; each
    node's worker still checks its copy before it counts."""
    cluster = start_cluster({"a": None, "b": None}, env=REQUESTS_ONLY)
    source = dataset("ds", FILES)
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "scientist")
    first = cluster.wait_terminal(alice, submit(cluster, alice, source, ["a", "b"]))
    assert first["state"] == "ready", dump(first) + cluster.logs()
    listed = listings.count[bucket]

    with cluster.http(bob) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["b", "a"]})
    assert response.status_code == 202, response.text
    second = response.json()
    assert second["state"] in ("transferring", "ready"), second
    final = cluster.wait_terminal(bob, second["id"])

    assert final["state"] == "ready", dump(final) + cluster.logs()
    assert listings.count[bucket] == listed, "followed at submission: nothing listed again"
    with cluster.ledger.read_session() as session, session.begin():
        kinds = session.scalars(select(TaskRow.kind).where(TaskRow.job_id == second["id"])).all()
    assert sorted(kinds) == ["verify", "verify"], kinds
    story = audit_actions(cluster.ledger, second["id"])
    assert story == ["stage.requested", "policy.allowed", "stage.completed"], story
    allowed = event_details(cluster, second["id"], "policy.allowed")
    assert allowed["plan_of"] == first["id"] and sorted(allowed["cache_hits"]) == ["a", "b"], allowed
    assert allowed["highest_label"] == "public"


def test_a_killed_planner_is_taken_over_and_its_waiters_follow(
    start_cluster, dataset, bucket, listings: Listings
) -> None:
    cluster = start_cluster({"a": None, "b": None}, env=REQUESTS_ONLY)
    source = dataset("ds", FILES)
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "scientist")
    listings.hold()
    first = submit(cluster, alice, source, ["a", "b"])
    assert listings.entered.wait(30), cluster.logs()

    def planning() -> str | None:
        with cluster.ledger.read_session() as session, session.begin():
            return session.scalar(select(PlanShareRow.owner).where(PlanShareRow.job_id == first))

    planner = wait_for("the planner", planning, timeout=30)
    stuck = planner.partition("@")[0]
    second = submit(cluster, bob, source, ["a", "b"])
    cluster.kill_worker(stuck)  # dies mid-listing, holding the plan's lease
    listings.release()

    def taken_over() -> bool:
        with cluster.ledger.read_session() as session, session.begin():
            (share,) = session.scalars(select(PlanShareRow)).all()  # one source: one plan
            return share.state == "planned" and share.owner != planner

    wait_for("the plan taken over", taken_over, timeout=60)
    cluster.start_worker(stuck)  # the node comes back, for its own copies
    one, two = cluster.wait_terminal(alice, first), cluster.wait_terminal(bob, second)

    assert one["state"] == two["state"] == "ready", dump([one, two]) + cluster.logs()
    # The dead planner's listing (held, unanswered) and the take-over's: two, none for the follower.
    assert listings.count[bucket] == 2, listings.count
    plan_ofs = [event_details(cluster, i, "policy.allowed").get("plan_of") for i in (first, second)]
    assert plan_ofs in ([None, first], [second, None]), plan_ofs  # one planned it, the other followed
    for staging_id in (first, second):
        actions = audit_actions(cluster.ledger, staging_id)
        assert actions == ["stage.requested", "policy.allowed", "stage.completed"], actions


def test_a_user_who_may_not_read_the_source_gets_no_hit_from_someone_elses_plan(
    start_cluster, tmp_path: Path
) -> None:
    """The API lets both through (it allows the whole tree); the worker is stricter (each
    user's own directory): bob's request for alice's data, fresh plan and cached copy at
    hand, still fails on his own rights, pinning nothing."""
    homes = tmp_path / "homes"
    ds = homes / "alice" / "ds"
    for key, data in FILES.items():
        (ds / key).parent.mkdir(parents=True, exist_ok=True)
        (ds / key).write_bytes(data)
    (ds / ".classification").write_text("public\n")
    cluster = start_cluster({}, env={"STAGEGATE_SOURCE_ROOTS": f"{homes}/{{user}}:{homes}"})
    cluster.start_worker("a", env={"STAGEGATE_SOURCE_ROOTS": f"{homes}/{{user}}"})
    cluster.wait_nodes_ready()
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "scientist")

    mine = cluster.wait_terminal(alice, submit(cluster, alice, str(ds), ["a"]))
    assert mine["state"] == "ready", dump(mine) + cluster.logs()
    theirs = cluster.wait_terminal(bob, submit(cluster, bob, str(ds), ["a"]))

    assert theirs["state"] == "failed", dump(theirs)
    assert "homes/bob" in " ".join(theirs["errors"]) or "not permitted" in " ".join(theirs["errors"]).lower()
    with cluster.ledger.read_session() as session, session.begin():
        assert session.scalars(select(PinRow.job_id).where(PinRow.job_id == theirs["id"])).all() == []
    assert "policy.allowed" not in audit_actions(cluster.ledger, theirs["id"])


def test_a_label_raised_at_the_source_quarantines_the_cached_copy(
    start_cluster, dataset, bucket, s3_client
) -> None:
    cluster = start_cluster(
        {"a": None},
        env={"STAGEGATE_LABEL_RESCAN_INTERVAL": "1", "STAGEGATE_LABEL_RESCAN_RATE": "200"},
    )
    source = dataset("ds", FILES)
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "scientist")
    held = cluster.wait_terminal(alice, submit(cluster, alice, source, ["a"]))
    assert held["state"] == "ready", dump(held) + cluster.logs()
    path = Path(held["nodes"][0]["path"])

    # A tag changes neither the ETag nor LastModified: no listing can see it.
    s3_client.put_object_tagging(
        Bucket=bucket, Key="ds/part-03.bin", Tagging={"TagSet": [{"Key": LABEL_TAG, "Value": "internal"}]}
    )

    def quarantined() -> list[Any]:
        from stagegate.ledger import AuditTrail

        return [e for e in AuditTrail(cluster.ledger).query(action="dataset.labels_rose")]

    (event,) = wait_for("the quarantine", quarantined, timeout=60, every=0.5)
    assert event.details["highest_label"] == "internal" and event.details["evicting"] is False
    assert path.is_dir(), "alice still holds it: it stays until she lets go"

    # A new request is denied, clearly, not given the copy.
    with cluster.http(bob) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code == 403, response.text
    refused = response.json()["detail"]["staging"]
    assert refused["state"] == "denied" and "is quarantined: part-03.bin is internal" in refused["reasons"][0]
    with cluster.ledger.read_session() as session, session.begin():
        assert session.scalars(select(PinRow.job_id).where(PinRow.job_id == refused["id"])).all() == []

    with cluster.http(alice) as http:
        assert http.delete(f"/v1/stagings/{held['id']}").json()["state"] == "released"
    wait_for("the quarantined copy deleted", lambda: not path.exists(), timeout=30)

    def datasets() -> list[NodeDatasetRow]:
        with cluster.ledger.read_session() as session, session.begin():
            return list(session.scalars(select(NodeDatasetRow)))

    # Moved aside first, then its row: the directory is gone a moment before the row.
    wait_for("its row gone", lambda: datasets() == [], timeout=30, every=0.2)


def test_the_re_scan_reads_the_label_file_above_a_subset(start_cluster, bucket, s3_client) -> None:
    """A subset staged under a labelled prefix is labelled by the file above it: the re-scan
    reads that file too, so it keeps the copy while the label holds and quarantines it once
    the label rises (before, it read only the files inside and quarantined it as unclassified)."""
    cluster = start_cluster(
        {"a": None},
        env={"STAGEGATE_LABEL_RESCAN_INTERVAL": "1", "STAGEGATE_LABEL_RESCAN_RATE": "200"},
    )
    put_objects(s3_client, bucket, {f"mini/val/{k}": v for k, v in FILES.items()})
    put_objects(s3_client, bucket, {f"mini/{LABEL_FILE_NAME}": b"public\n"})
    alice = cluster.token("alice", "scientist")
    source = f"s3://{bucket}/mini/val"
    held = cluster.wait_terminal(alice, submit(cluster, alice, source, ["a"]))
    assert held["state"] == "ready", dump(held) + cluster.logs()

    def checks() -> list[DatasetLabelCheckRow]:
        with cluster.ledger.read_session() as session, session.begin():
            return list(session.scalars(select(DatasetLabelCheckRow)))

    first = wait_for("a re-scan", checks, timeout=60, every=0.5)
    wait_for("a second re-scan", lambda: checks()[0].checked_at > first[0].checked_at, timeout=60, every=0.5)
    assert all(c.quarantined_at is None for c in checks()), [c.reason for c in checks()]

    put_objects(s3_client, bucket, {f"mini/{LABEL_FILE_NAME}": b"internal\n"})
    wait_for("the quarantine", lambda: checks()[0].quarantined_at is not None, timeout=60, every=0.5)
    assert "internal" in (checks()[0].reason or ""), checks()[0].reason


def test_a_hit_after_the_window_follows_a_plan_kept_verified_until_the_source_changes(
    start_cluster, dataset, bucket, s3_client
) -> None:
    """A plan in use is listed again in the background (workers.plan_recheck): a hit long
    after the freshness window follows it without listing, while the source is unchanged. A
    rewritten object, then a raised label file, make the check forget the plan: the next
    request lists afresh and copies the new bytes, then is denied."""
    # A window long enough for a listing on a loaded machine (a longer one is held off).
    cluster = start_cluster(
        {"a": None}, env={"STAGEGATE_PLAN_FRESH_SECONDS": "8", "STAGEGATE_PLAN_KEEP_WARM_SECONDS": "300"}
    )
    source = dataset("ds", FILES)
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "scientist")
    first = cluster.wait_terminal(alice, submit(cluster, alice, source, ["a"]))
    assert first["state"] == "ready", dump(first) + cluster.logs()

    def share() -> PlanShareRow | None:
        with cluster.ledger.read_session() as session, session.begin():
            return session.scalars(select(PlanShareRow)).one_or_none()

    planned = share()
    assert planned is not None and planned.job_id == first["id"] and planned.planned_at is not None
    # Two checks: its first plan is over a window old, kept fresh by the listings alone.
    wait_for("a check", lambda: (s := share()) and s.planned_at > planned.planned_at, timeout=60, every=0.2)
    checked = share()
    wait_for(
        "a second check", lambda: (s := share()) and s.planned_at > checked.planned_at, timeout=60, every=0.2
    )

    hit = cluster.wait_terminal(bob, submit(cluster, bob, source, ["a"]))
    assert hit["state"] == "ready", dump(hit) + cluster.logs()
    assert event_details(cluster, hit["id"], "policy.allowed")["plan_of"] == first["id"], "followed"
    assert hit["nodes"][0]["path"] == first["nodes"][0]["path"], "the cached copy"

    s3_client.put_object(Bucket=bucket, Key="ds/part-03.bin", Body=b"rewritten at the source")
    wait_for("the changed plan forgotten", lambda: share() is None, timeout=60, every=0.2)
    fresh = cluster.wait_terminal(bob, submit(cluster, bob, source, ["a"]))
    assert fresh["state"] == "ready", dump(fresh) + cluster.logs()
    assert "plan_of" not in event_details(cluster, fresh["id"], "policy.allowed"), "listed afresh"
    assert (Path(fresh["nodes"][0]["path"]) / "part-03.bin").read_bytes() == b"rewritten at the source"

    s3_client.put_object(Bucket=bucket, Key=f"ds/{LABEL_FILE_NAME}", Body=b"internal\n")
    wait_for("the relabelled plan forgotten", lambda: share() is None, timeout=60, every=0.2)
    with cluster.http(alice) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    staging = response.json()["detail"]["staging"] if response.status_code == 403 else response.json()
    refused = cluster.wait_terminal(alice, staging["id"])
    assert refused["state"] == "denied", dump(refused)
    assert "policy.allowed" not in audit_actions(cluster.ledger, refused["id"])
