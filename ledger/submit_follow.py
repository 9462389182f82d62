"""A submission that follows a fresh shared plan itself, in the transaction that records it.

A job array starting (512 init containers asking for one cached dataset) spent most of its
time on the round trip each follower made through a worker: a plan message, a claim, a look at
the shared plan, an admission, each its own commit, while the submission waited for the
decision. When the plan the request would share is fresh and allowed, and every node of the
request already holds (or is writing) its share, nothing is left for a worker to decide: the
submission follows the plan at once, audited as a worker would audit it (its own
``stage.requested`` and ``policy.allowed`` with ``plan_of``), and only the cache-hit checks
go to the nodes.

It follows only where a worker would have let it follow, and falls back to the plan task
otherwise:

- the same share key, so the API must cut plans as the workers do (their policy file and batch
  sizes, ``PlanCut``): another policy version gives another key, never a stale decision;
- a plain ``s3://`` source, which every worker lets every requester read: a local source is
  checked again on the node, through its own filesystem, and that check stays the worker's;
- every node a hit or already being written: a node that must copy needs what other datasets
  there hold of the share (delta staging), which only the node's manifests tell;
- no node's copy quarantined or being deleted: those are a worker's to decide and explain.
"""

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from stagegate.confinement import permitted_everywhere
from stagegate.ledger.label_quarantine import QuarantinedError, check_not_quarantined
from stagegate.ledger.models import JobRow, PlanShareRow
from stagegate.ledger.plan_shares import PlanCut, SharedPlan, placed_shapes
from stagegate.ledger.staging_steps import NodePortion, lock_cached, request_part
from stagegate.states import DatasetState, PlanShareState

# A followed plan's ``used_at`` (what keeps it listed again in the background) is moved on at
# most this often: every submission writing it would queue the whole burst on that one row.
USED_AT_STEP = timedelta(seconds=1)


def fresh_plan_in(session: Session, job: JobRow, cut: PlanCut, now: datetime) -> SharedPlan | None:
    """Inside the submission's transaction: the fresh, allowed plan ``job`` may follow now."""
    if not permitted_everywhere(job.source):
        return None
    nodes = json.loads(job.nodes or "[]")
    key = cut.key(request_part(job), job.mode, len(nodes))
    row = session.get(PlanShareRow, key)
    if row is None or row.state != PlanShareState.PLANNED or not row.outcome or row.planned_at is None:
        return None
    if row.planned_at + timedelta(seconds=cut.fresh_seconds) <= now:
        return None
    plan = SharedPlan.from_json(row.outcome)
    if not plan.allowed or plan.policy_version != cut.policy_version:
        return None
    if row.used_at is None or row.used_at < now - USED_AT_STEP:
        # One submission a step moves it, the one that finds the row unlocked: the others go
        # on, where an UPDATE would wait for that one's commit (and for the chain's lock before it).
        free = session.scalar(
            select(PlanShareRow.key)
            .where(
                PlanShareRow.key == key,
                or_(PlanShareRow.used_at.is_(None), PlanShareRow.used_at < now - USED_AT_STEP),
            )
            .with_for_update(skip_locked=True)
        )
        if free is not None:
            session.execute(update(PlanShareRow).where(PlanShareRow.key == key).values(used_at=now))
    return plan


def portions_on_hand(
    session: Session, plan: SharedPlan, mode: str | None, nodes: Sequence[str], now: datetime
) -> list[NodePortion] | None:
    """What each node will hold of ``plan``, if every node holds it already or is writing it
    (their dataset rows locked from here, as admission locks them); None otherwise."""
    portions = []
    # One lock order (by node) for every submission: two requests naming the same nodes in
    # another order must not each hold one row the other waits for.
    for node, shape in sorted(placed_shapes(plan, mode, nodes), key=lambda p: p[0]):
        lock = lock_cached(session, node, shape.digest, now)
        dataset = lock.row
        if dataset is None or dataset.state == DatasetState.DELETING:
            return None
        if dataset.state == DatasetState.EVICTING and not lock.exclusive:
            return None  # marked for eviction since the look: a worker's admission saves it
        try:
            check_not_quarantined(session, node, shape.digest)
        except QuarantinedError:
            return None
        portions.append(NodePortion(node, shape.digest, shape.files, shape.bytes, shape.batches))
    return portions


def follow_details(plan: SharedPlan) -> dict[str, object]:
    """What the follower's ``policy.allowed`` records of the plan, as a worker records it."""
    return {**plan.details, "plan_of": plan.job_id}
