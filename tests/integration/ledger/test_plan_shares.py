"""The single-flight rules of a shared plan, on SQLite and PostgreSQL: one leader at a time,
waiters given back and woken, fresh plans followed, a dead leader's plan taken over."""

import time
from datetime import UTC, datetime

import pytest

from stagegate.ledger import Ledger
from stagegate.ledger.models import JobRow, PlanShareRow, TaskRow
from stagegate.ledger.plan_shares import PlanShares, Role, SharedPlan, ShareShape
from stagegate.ledger.tasks import BatchRange, TaskKey, Tasks, new_task
from stagegate.states import StagingState, TaskState

pytestmark = pytest.mark.integration
KEY = "k" * 64


def staging(ledger: Ledger, job_id: str, owner: str) -> TaskKey:
    """A staging in planning whose plan task ``owner`` holds (claimed, as a worker would)."""
    now = datetime.now(UTC)
    with ledger.sessions.begin() as session:
        session.add(
            JobRow(id=job_id, kind="stage", state=StagingState.PLANNING, actor="u", role="scientist",
                   source="s3://b/ds", destination="", files=0, bytes=0, created_at=now, updated_at=now,
                   mode="replicate", nodes='["a"]')
        )  # fmt: skip
        session.add(new_task(TaskKey(job_id, "plan", "", 0), TaskState.QUEUED))
    key = TaskKey(job_id, "plan", "", 0)
    assert Tasks(ledger, 60).claim(key, owner) is not None
    return key


def plan_of(job_id: str) -> SharedPlan:
    shape = ShareShape("d" * 64, 3, 300, (BatchRange("a", "c", 3, 300),))
    return SharedPlan(job_id, "d" * 64, 3, 300, "v1", True, (), {"highest_label": "public"}, (shape,))


def task_state(ledger: Ledger, job_id: str) -> tuple[str, str | None]:
    with ledger.read_session() as session, session.begin():
        row = session.get(TaskRow, (job_id, "plan", "", 0))
        assert row is not None
        return row.state, row.owner


def test_one_leads_the_others_wait_then_follow(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=30)
    staging(ledger, "j1", "w1")
    staging(ledger, "j2", "w2")
    assert shares.take(KEY, "j1", "w1").role == Role.LEAD
    waiting = shares.take(KEY, "j2", "w2")
    assert (waiting.role, waiting.leader) == (Role.WAIT, "j1")
    assert task_state(ledger, "j2") == (TaskState.QUEUED, None), "given back, not running"

    woken = shares.planned(KEY, plan_of("j1"))
    assert woken == [TaskKey("j2", "plan", "", 0)]
    assert Tasks(ledger, 60).claim(woken[0], "w2") is not None
    followed = shares.take(KEY, "j2", "w2")
    assert followed.role == Role.FOLLOW and followed.plan == plan_of("j1")
    staging(ledger, "j3", "w3")
    assert shares.take(KEY, "j3", "w3").role == Role.FOLLOW, "fresh: no second listing"


def test_a_stale_plan_is_planned_again(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=0.2)
    staging(ledger, "j1", "w1")
    staging(ledger, "j2", "w2")
    shares.take(KEY, "j1", "w1")
    shares.planned(KEY, plan_of("j1"))
    time.sleep(0.3)
    assert shares.take(KEY, "j2", "w2").role == Role.LEAD


def test_a_dead_leaders_plan_is_taken_over_once_its_lease_ran_out(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=0.3, fresh_seconds=30)
    staging(ledger, "j1", "dead")
    staging(ledger, "j2", "w2")
    staging(ledger, "j3", "w3")
    assert shares.take(KEY, "j1", "dead").role == Role.LEAD  # and never says planned
    assert shares.take(KEY, "j2", "w2").role == Role.WAIT
    time.sleep(0.4)
    assert shares.take(KEY, "j3", "w3").role == Role.LEAD, "the lease ran out: taken over"
    # The dead leader's late result no longer counts; the new leader's does.
    assert shares.planned(KEY, plan_of("j1")) == []
    assert shares.planned(KEY, plan_of("j3")) == [TaskKey("j2", "plan", "", 0)]


def test_a_leader_that_fails_for_good_lets_a_waiter_plan(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=30)
    staging(ledger, "j1", "w1")
    staging(ledger, "j2", "w2")
    shares.take(KEY, "j1", "w1")
    shares.take(KEY, "j2", "w2")
    woken = shares.abandon(KEY, "j1")
    assert woken == [TaskKey("j2", "plan", "", 0)]
    assert Tasks(ledger, 60).claim(woken[0], "w2") is not None
    assert shares.take(KEY, "j2", "w2").role == Role.LEAD


def planned_share(
    ledger: Ledger, shares: PlanShares, job_id: str = "j1", plan: SharedPlan | None = None
) -> None:
    staging(ledger, job_id, "w1")
    assert shares.take(KEY, job_id, "w1").role == Role.LEAD
    shares.planned(KEY, plan or plan_of(job_id))


def test_a_plan_in_use_is_checked_by_one_worker_and_fresh_again_from_its_listing(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=4)
    planned_share(ledger, shares)
    assert shares.check_due("w8", keep_warm_seconds=60) is None, "not yet half a window old"
    time.sleep(2.2)
    check = shares.check_due("w8", keep_warm_seconds=60)
    assert check is not None and check.plan == plan_of("j1")
    assert shares.check_due("w9", keep_warm_seconds=60) is None, "claimed: one listing at a time"
    time.sleep(2.0)  # the first plan's window ran out meanwhile (a margin of 2 s to the check's)
    assert shares.verified(check)
    staging(ledger, "j2", "w2")
    followed = shares.take(KEY, "j2", "w2")
    assert followed.role == Role.FOLLOW and followed.leader == "j1", "fresh from the check's listing"


def test_a_forgotten_plan_is_planned_again(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=1)
    planned_share(ledger, shares)
    time.sleep(0.6)
    check = shares.check_due("w8", keep_warm_seconds=60)
    assert check is not None
    shares.forget(check)
    staging(ledger, "j2", "w2")
    assert shares.take(KEY, "j2", "w2").role == Role.LEAD


def test_plans_unused_denied_or_planned_afresh_are_not_kept_warm(ledger: Ledger) -> None:
    shares = PlanShares(ledger, lease_seconds=60, fresh_seconds=1)
    denied = SharedPlan("j1", "d" * 64, 3, 300, "v1", False, ("no",), {"highest_label": "secret"})
    planned_share(ledger, shares, plan=denied)
    time.sleep(0.6)
    assert shares.check_due("w8", keep_warm_seconds=60) is None, "a denial is not kept"

    time.sleep(0.5)  # the denial is stale: planned afresh, and allowed now
    planned_share(ledger, shares, "j2")
    time.sleep(0.6)
    assert shares.check_due("w8", keep_warm_seconds=0.3) is None, "nobody used it lately"
    check = shares.check_due("w8", keep_warm_seconds=60)
    assert check is not None and check.plan.job_id == "j2"
    time.sleep(1.1)
    staging(ledger, "j3", "w3")
    assert shares.take(KEY, "j3", "w3").role == Role.LEAD, "stale: planned afresh, mid-check"
    assert not shares.verified(check), "the check must not vouch for the new leader's plan"
    shares.forget(check)
    with ledger.read_session() as session, session.begin():
        row = session.get(PlanShareRow, KEY)
        assert row is not None and (row.job_id, row.state) == ("j3", "planning")


def test_a_plan_whose_listing_outlasts_the_window_is_held_off_not_listed_again_at_once(
    ledger: Ledger,
) -> None:
    shares = PlanShares(ledger, lease_seconds=0.1, fresh_seconds=1)
    planned_share(ledger, shares)
    time.sleep(0.6)
    check = shares.check_due("w8", keep_warm_seconds=60)
    assert check is not None
    shares.hold_off(check, 60)
    time.sleep(0.2)  # past the claim's own lease
    assert shares.check_due("w9", keep_warm_seconds=60) is None
    staging(ledger, "j2", "w2")
    time.sleep(0.5)
    assert shares.take(KEY, "j2", "w2").role == Role.LEAD, "held off, not vouched for"
