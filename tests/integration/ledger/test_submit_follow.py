"""A submission that follows a fresh shared plan itself (ledger.submit_follow), on SQLite and
PostgreSQL: admitted in its own transaction with its own audit story where a worker would
have let it follow, and queued for a worker's plan step in every other case."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from integration.ledger.helpers import sql_statements
from stagegate.confinement import SourceRules
from stagegate.ledger import AuditTrail, Ledger, Nodes, Principal, StagingRequests, TaskKey
from stagegate.ledger.models import (
    AuditEventRow,
    DatasetLabelCheckRow,
    JobRow,
    NodeDatasetRow,
    PinRow,
    PlanShareRow,
    TaskRow,
)
from stagegate.ledger.plan_shares import PlanCut, SharedPlan, ShareShape
from stagegate.ledger.staging_steps import request_part
from stagegate.ledger.tasks import BatchRange
from stagegate.states import DatasetState, PlanShareState, StagingState

pytestmark = pytest.mark.integration

ALICE = Principal("alice", "scientist", "vision", "token-a")
BOB = Principal("bob", "job", None, "token-b")
DIGEST = "d" * 64
SOURCE = "s3://bucket/ds/"
CUT = PlanCut("v1", 1 << 30, 1000, fresh_seconds=60)


def _nodes(ledger: Ledger, *names: str) -> None:
    for name in names:
        Nodes(ledger).heartbeat(name, f"/nvme/{name}", 1 << 40, f"{name}@host:1")


def _planned(
    ledger: Ledger, leader: str, *, allowed: bool = True, cut: PlanCut = CUT, age: float = 0
) -> None:
    """The plan ``leader`` made, shared as a worker's plan step records it."""
    shape = ShareShape(DIGEST, 3, 300, (BatchRange("a", "c", 3, 300),))
    labels = {"highest": "public"}
    plan = SharedPlan(leader, DIGEST, 3, 300, cut.policy_version, allowed, (), labels, (shape,))
    at = datetime.now(UTC) - timedelta(seconds=age)
    with ledger.sessions.begin() as session:
        row = session.get(JobRow, leader)
        assert row is not None
        key = cut.key(request_part(row), row.mode, len(json.loads(row.nodes or "[]")))
        session.add(
            PlanShareRow(key=key, job_id=leader, state=PlanShareState.PLANNED, owner=None, lease_until=at,
                         planned_at=at, outcome=plan.to_json(), used_at=at)
        )  # fmt: skip


def _cached(ledger: Ledger, node: str, state: str = DatasetState.READY) -> None:
    now = datetime.now(UTC)
    with ledger.sessions.begin() as session:
        session.add(
            NodeDatasetRow(node=node, digest=DIGEST, path=f"/nvme/{node}/datasets/{DIGEST}", files=3,
                           bytes=300, state=state, writer_job=None, created_at=now, last_used=now)
        )  # fmt: skip


def _leader(ledger: Ledger, requests: StagingRequests, source: str = SOURCE) -> str:
    staging, _, sent = requests.submit(ALICE, source=source, nodes=["a", "b"])
    assert sent == [TaskKey(staging.id, "plan", "", 0)], "no plan yet: the first one plans"
    return staging.id


def _kinds(ledger: Ledger, job_id: str) -> list[tuple[str, str]]:
    with ledger.read_session() as session, session.begin():
        rows = session.execute(select(TaskRow.kind, TaskRow.node).where(TaskRow.job_id == job_id))
        return sorted((kind, node) for kind, node in rows)


def _story(ledger: Ledger, job_id: str) -> list[tuple[str, dict[str, object]]]:
    with ledger.read_session() as session, session.begin():
        rows = session.execute(
            select(AuditEventRow.action, AuditEventRow.details)
            .where(AuditEventRow.job_id == job_id)
            .order_by(AuditEventRow.seq)
        )
        return [(action, json.loads(details)) for action, details in rows]


def test_a_hit_on_every_node_is_admitted_at_submission_with_its_own_audit_story(ledger: Ledger) -> None:
    _nodes(ledger, "a", "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    leader = _leader(ledger, requests)
    _planned(ledger, leader)
    _cached(ledger, "a")
    _cached(ledger, "b")

    staging, created, sent = requests.submit(BOB, source=SOURCE, nodes=["b", "a"])

    assert created and staging.state == StagingState.TRANSFERRING
    assert set(sent) == {TaskKey(staging.id, "verify", "a", 0), TaskKey(staging.id, "verify", "b", 0)}
    assert _kinds(ledger, staging.id) == [("verify", "a"), ("verify", "b")], "no plan task: nothing to plan"
    assert [n.cache_hit for n in staging.nodes] == [True, True]
    story = _story(ledger, staging.id)
    assert [action for action, _ in story] == ["stage.requested", "policy.allowed"]
    assert story[1][1]["plan_of"] == leader and sorted(story[1][1]["cache_hits"]) == ["a", "b"]
    with ledger.read_session() as session, session.begin():
        job = session.get(JobRow, staging.id)
        assert job is not None and (job.plan_job, job.manifest_digest, job.files) == (leader, DIGEST, 3)
        assert job.actor == "bob", "its own requester, not the leader's"
        pins = session.scalars(select(PinRow.node).where(PinRow.job_id == staging.id)).all()
        assert sorted(pins) == ["a", "b"]
    assert AuditTrail(ledger).verify().intact


def test_a_followed_hit_reads_each_nodes_quarantine_once(ledger: Ledger) -> None:
    """The follow checks every node before admitting and admission checks again, both under the
    row lock a quarantine must wait for: the second asks nothing of the database."""
    _nodes(ledger, "a", "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, requests))
    _cached(ledger, "a")
    _cached(ledger, "b")

    with sql_statements(ledger) as statements:
        staging, _, _ = requests.submit(BOB, source=SOURCE, nodes=["a", "b"])

    assert [n.cache_hit for n in staging.nodes] == [True, True]
    assert sum("FROM dataset_label_checks" in s for s in statements) == 2, statements


def test_a_node_being_written_is_followed_and_waits_for_that_copy(ledger: Ledger) -> None:
    _nodes(ledger, "a", "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    leader = _leader(ledger, requests)
    _planned(ledger, leader)
    _cached(ledger, "a", DatasetState.WRITING)
    _cached(ledger, "b")

    staging, _, sent = requests.submit(BOB, source=SOURCE, nodes=["a", "b"])

    assert sent == [TaskKey(staging.id, "verify", "b", 0)], "a hit on b; a is another staging's to write"
    assert staging.state == StagingState.TRANSFERRING


def _queued_for_a_worker(requests: StagingRequests, ledger: Ledger, source: str = SOURCE) -> None:
    staging, _, sent = requests.submit(BOB, source=source, nodes=["a", "b"])
    assert sent == [TaskKey(staging.id, "plan", "", 0)]
    assert staging.state == StagingState.PENDING
    assert _kinds(ledger, staging.id) == [("plan", "")]
    assert [action for action, _ in _story(ledger, staging.id)] == ["stage.requested"]
    with ledger.read_session() as session, session.begin():
        assert session.scalars(select(PinRow).where(PinRow.job_id == staging.id)).all() == []


def test_a_node_that_would_copy_is_left_to_a_worker(ledger: Ledger) -> None:
    # Its delta (what other datasets on the node hold of the share) is the node's manifests' to tell.
    _nodes(ledger, "a", "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, requests))
    _cached(ledger, "a")
    _queued_for_a_worker(requests, ledger)
    with ledger.read_session() as session, session.begin():
        row = session.get(NodeDatasetRow, ("a", DIGEST))
        assert row is not None and row.state == DatasetState.READY


def test_a_quarantined_or_deleting_copy_is_left_to_a_worker(ledger: Ledger) -> None:
    _nodes(ledger, "a", "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, requests))
    _cached(ledger, "a")
    _cached(ledger, "b", DatasetState.DELETING)
    _queued_for_a_worker(requests, ledger)
    with ledger.sessions.begin() as session:
        session.get(NodeDatasetRow, ("b", DIGEST)).state = DatasetState.READY  # type: ignore[union-attr]
        now = datetime.now(UTC)
        session.add(DatasetLabelCheckRow(node="a", digest=DIGEST, checked_at=now, quarantined_at=now,
                                         reason="labels rose to pii"))  # fmt: skip
    _queued_for_a_worker(requests, ledger)


def test_a_plan_under_another_policy_or_cut_is_never_followed(ledger: Ledger) -> None:
    # The API's policy file differs from the workers': another key, so their plan is not found.
    _nodes(ledger, "a", "b")
    _cached(ledger, "a")
    _cached(ledger, "b")
    workers = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, workers))
    other_policy = PlanCut("v2", CUT.batch_max_bytes, CUT.batch_max_files, 60)
    other_batches = PlanCut("v1", 1 << 20, 1000, 60)
    for api in (other_policy, other_batches):
        _queued_for_a_worker(StagingRequests(ledger, 30, plans=api), ledger)
    _queued_for_a_worker(StagingRequests(ledger, 30), ledger)  # told no cut: never follows


def test_a_stale_or_denied_plan_is_left_to_a_worker(ledger: Ledger) -> None:
    _nodes(ledger, "a", "b")
    _cached(ledger, "a")
    _cached(ledger, "b")
    requests = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, requests), age=CUT.fresh_seconds + 1)
    _queued_for_a_worker(requests, ledger)
    denied = StagingRequests(ledger, 30, plans=CUT)
    _planned(ledger, _leader(ledger, denied, source="s3://bucket/other/"), allowed=False)
    _queued_for_a_worker(denied, ledger, source="s3://bucket/other/")


def test_a_local_source_is_checked_on_the_node_not_followed(ledger: Ledger) -> None:
    # Only the node's worker can walk the path without following links: it must check it.
    _nodes(ledger, "a", "b")
    _cached(ledger, "a")
    _cached(ledger, "b")
    local = "/mnt/nfs/home/bob/ds"
    requests = StagingRequests(ledger, 30, SourceRules.parse("/mnt/nfs/home/{user}"), plans=CUT)
    leader, _, _ = requests.submit(BOB, source=local, nodes=["a", "b"])
    _planned(ledger, leader.id)
    _queued_for_a_worker(requests, ledger, source=local)
