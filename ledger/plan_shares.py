"""One plan for many identical requests (single-flight), shared through the ledger.

Requests for the same source part, policy version, mode, share count and batch sizes (the
*share key*) that arrive while one of them plans, or within the freshness window after, reuse
that plan: no second listing, no second label read, no per-object row copied (a follower's
``jobs.plan_job`` names the staging whose manifest it uses). The row is the lock: taken under
``SELECT ... FOR UPDATE`` (SQLite: the write lock every write transaction starts with), so
several workers and the API agree; a planner that died lets its lease run out and the next
request takes the plan over. Waiting stagings are recorded beside it and woken when it is done.

A plan in use stays fresh past its window while its source is unchanged: the node workers
list it again in the background (``check_due``, then ``verified`` or ``forget``; the listing
and the decision are ``workers.plan_recheck``'s), so a cache hit follows it without listing.

Sharing never widens rights: each follower's source is still opened as its own requester
(``workers.confined_sources``) before it may follow, and it is decided on the leader's labels
under the same policy version, so its labels are the leader's, never lower.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import PlanShareRow, PlanWaiterRow, TaskRow
from stagegate.ledger.tasks import BatchRange, TaskKey
from stagegate.states import PlanShareState, TaskState


@dataclass(frozen=True, slots=True)
class ShareShape:
    """One node share of a shared plan, without its node: every follower maps the shapes to
    its own nodes (all of them for replicate, one each for shard)."""

    digest: str
    files: int
    bytes: int
    batches: Sequence[BatchRange]


@dataclass(frozen=True, slots=True)
class SharedPlan:
    """What a plan established, as every follower needs it: no listing, no per-object read."""

    job_id: str  # the staging that planned it; its manifest and label files are the plan's
    digest: str
    files: int
    bytes: int
    policy_version: str
    allowed: bool
    reasons: Sequence[str]
    details: dict[str, object]
    shapes: Sequence[ShareShape] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SharedPlan":
        raw = json.loads(text)
        shapes = tuple(
            ShareShape(s["digest"], s["files"], s["bytes"], tuple(BatchRange(**b) for b in s["batches"]))
            for s in raw.pop("shapes")
        )
        return cls(**{**raw, "reasons": tuple(raw["reasons"]), "shapes": shapes})


@dataclass(frozen=True, slots=True)
class DueCheck:
    """A plan claimed for a check: listed again from ``started`` (``PlanShares.check_due``)."""

    key: str
    plan: SharedPlan
    started: datetime


class Role(StrEnum):
    LEAD = "lead"  # plan it (first, or taking over a dead or stale plan)
    WAIT = "wait"  # another staging plans it right now: the task was given back until woken
    FOLLOW = "follow"  # a fresh plan exists: use it


@dataclass(frozen=True, slots=True)
class Taken:
    role: Role
    plan: SharedPlan | None = None
    leader: str | None = None


def share_key(
    request_part: str, policy_version: str, shares: int, batch_max_bytes: int, batch_max_files: int
) -> str:
    """The key identical requests share: what they ask to be planned (``request_part``: the
    source, the mode and any parameters such as filters), under which policy, cut how."""
    canonical = json.dumps(
        [request_part, policy_version, shares, batch_max_bytes, batch_max_files], separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def replicated(mode: str | None) -> bool:
    """Whether a staging of ``mode`` copies the whole dataset to each node (the default)."""
    return (mode or "replicate") == "replicate"


@dataclass(frozen=True, slots=True)
class PlanCut:
    """How plans are cut and shared: under which policy version, in batches of what size, fresh
    for how long. Whoever looks a shared plan up (the workers, and the API following one at
    submission) must cut as the workers do, or they find other plans (or none)."""

    policy_version: str
    batch_max_bytes: int
    batch_max_files: int
    fresh_seconds: float

    def key(self, request_part: str, mode: str | None, nodes: int) -> str:
        """The share key of a request (``staging_steps.request_part``) onto ``nodes`` nodes: a
        replicated plan is one share whatever the node count, a sharded one a share per node."""
        shares = 1 if replicated(mode) else nodes
        return share_key(
            request_part, self.policy_version, shares, self.batch_max_bytes, self.batch_max_files
        )


def placed_shapes(plan: SharedPlan, mode: str | None, nodes: Sequence[str]) -> list[tuple[str, ShareShape]]:
    """The plan's shares on a follower's own nodes: the whole on each (replicate), or one each."""
    if replicated(mode):
        return [(node, plan.shapes[0]) for node in nodes]
    return list(zip(nodes, plan.shapes, strict=True))


def _now() -> datetime:
    return datetime.now(UTC)


def _plan_task(job_id: str) -> TaskKey:
    return TaskKey(job_id, "plan", "", 0)


class PlanShares:
    """The shared plans of one ledger."""

    def __init__(self, ledger: Ledger, lease_seconds: float, fresh_seconds: float) -> None:
        self._ledger = ledger
        self.lease = timedelta(seconds=lease_seconds)
        self.fresh = timedelta(seconds=fresh_seconds)

    def take(self, key: str, job_id: str, owner: str) -> Taken:
        """Lead, wait for or follow the plan of ``key``, for the staging ``job_id`` whose plan
        task ``owner`` holds. Waiting gives that task back (queued until woken, or until the
        leader's lease runs out: then the reconciler sends it and it takes the plan over)."""
        now = _now()
        insert = postgresql.insert if self._ledger.dialect == "postgresql" else sqlite.insert
        with self._ledger.sessions.begin() as session:
            session.execute(
                insert(PlanShareRow)
                .values(key=key, job_id=job_id, state=PlanShareState.PLANNING, owner=owner, lease_until=now)
                .on_conflict_do_nothing(index_elements=[PlanShareRow.key])
            )
            row = session.get(PlanShareRow, key, with_for_update=True)
            assert row is not None
            fresh = row.planned_at is not None and row.planned_at + self.fresh > now
            row.used_at = now  # the workers keep the plans in use verified (check_due)
            if row.state == PlanShareState.PLANNED and row.outcome and fresh:
                return Taken(Role.FOLLOW, SharedPlan.from_json(row.outcome), row.job_id)
            if row.state == PlanShareState.PLANNING and row.job_id != job_id and row.lease_until > now:
                session.merge(PlanWaiterRow(key=key, job_id=job_id))
                self._give_back_in(session, job_id, owner, row.job_id, row.lease_until)
                return Taken(Role.WAIT, leader=row.job_id)
            # Ours already (a retry), absent, stale, or its planner's lease ran out: plan it.
            row.job_id, row.state, row.owner = job_id, PlanShareState.PLANNING, owner
            row.lease_until, row.planned_at, row.outcome = now + self.lease, None, None
            session.execute(
                delete(PlanWaiterRow).where(PlanWaiterRow.key == key, PlanWaiterRow.job_id == job_id)
            )
            return Taken(Role.LEAD)

    def renew(self, key: str, job_id: str, owner: str) -> bool:
        """Extend the lease of the plan ``owner`` is making for ``job_id``; False if it is not
        theirs any more (taken over)."""
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(PlanShareRow)
                .where(
                    PlanShareRow.key == key,
                    PlanShareRow.job_id == job_id,
                    PlanShareRow.owner == owner,
                    PlanShareRow.state == PlanShareState.PLANNING,
                )
                .values(lease_until=_now() + self.lease)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def planned(self, key: str, plan: SharedPlan) -> list[TaskKey]:
        """The leader's plan is done: fresh from now. Returns the waiters' plan tasks, taken to
        be sent now (send them after this commit)."""
        now = _now()
        with self._ledger.sessions.begin() as session:
            row = session.get(PlanShareRow, key, with_for_update=True)
            if row is None or row.job_id != plan.job_id:
                return []  # taken over meanwhile: the new leader's plan is the one shared
            row.state, row.planned_at, row.outcome, row.lease_until = (
                PlanShareState.PLANNED,
                now,
                plan.to_json(),
                now,
            )
            row.used_at = now  # its leader uses it from now: a long listing does not make it unused
            return self._wake_in(session, key, now)

    def abandon(self, key: str, job_id: str) -> list[TaskKey]:
        """The leader failed for good: forget its plan so a waiter plans afresh. Returns the
        waiters' plan tasks to send."""
        with self._ledger.sessions.begin() as session:
            row = session.get(PlanShareRow, key, with_for_update=True)
            if row is None or row.job_id != job_id:
                return []
            session.delete(row)
            return self._wake_in(session, key, _now())

    def check_due(self, owner: str, keep_warm_seconds: float) -> "DueCheck | None":
        """Claim, for ``owner``, the allowed plan most in need of a fresh listing: used within
        ``keep_warm_seconds``, planned over half the freshness window ago, and not being
        checked by anyone else (the row's lease, idle while a plan is planned, is the claim).
        The listing that checks it starts now; :meth:`verified` or :meth:`forget` ends it."""
        now = _now()
        with self._ledger.sessions.begin() as session:
            candidates = session.scalars(
                select(PlanShareRow)
                .where(
                    PlanShareRow.state == PlanShareState.PLANNED,
                    PlanShareRow.used_at > now - timedelta(seconds=keep_warm_seconds),
                    PlanShareRow.planned_at < now - self.fresh / 2,
                    PlanShareRow.lease_until < now,
                )
                .order_by(PlanShareRow.planned_at)
                .limit(10)
            ).all()
            for row in candidates:
                plan = SharedPlan.from_json(row.outcome) if row.outcome else None
                if plan is None or not plan.allowed:
                    continue  # a denial is not worth keeping: it goes stale on its own
                claimed = session.execute(
                    update(PlanShareRow)
                    .where(
                        PlanShareRow.key == row.key,
                        PlanShareRow.job_id == row.job_id,
                        PlanShareRow.state == PlanShareState.PLANNED,
                        PlanShareRow.lease_until < now,
                    )
                    .values(owner=owner, lease_until=now + self.lease)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return DueCheck(row.key, plan, now)
        return None

    def verified(self, check: "DueCheck") -> bool:
        """A listing begun at ``check.started`` found the plan's source as planned: it is fresh
        from then (not from now: a change made during the listing may have been missed).
        False if the plan was planned afresh or forgotten meanwhile."""
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(PlanShareRow)
                .where(
                    PlanShareRow.key == check.key,
                    PlanShareRow.job_id == check.plan.job_id,
                    PlanShareRow.state == PlanShareState.PLANNED,
                    PlanShareRow.planned_at < check.started,
                )
                .values(planned_at=check.started, lease_until=_now())
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def hold_off(self, check: "DueCheck", seconds: float) -> None:
        """Check this plan again ``seconds`` from now at the soonest, and leave it as it is:
        its listing took longer than the window, so listing again at once keeps nothing
        fresh and only loads the source."""
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(PlanShareRow)
                .where(
                    PlanShareRow.key == check.key,
                    PlanShareRow.job_id == check.plan.job_id,
                    PlanShareRow.state == PlanShareState.PLANNED,
                )
                .values(lease_until=_now() + timedelta(seconds=seconds))
            )

    def forget(self, check: "DueCheck") -> None:
        """The source changed (or may not be read as planned): no request follows this plan
        again, the next one lists and decides afresh."""
        with self._ledger.sessions.begin() as session:
            session.execute(
                delete(PlanShareRow).where(
                    PlanShareRow.key == check.key,
                    PlanShareRow.job_id == check.plan.job_id,
                    PlanShareRow.state == PlanShareState.PLANNED,
                )
            )

    @staticmethod
    def forget_plans_of(session: Session, job_ids: Sequence[str]) -> None:
        """Inside the caller's transaction: no request may follow these stagings' plans again
        (their datasets' labels rose): the next one lists and decides afresh."""
        if job_ids:
            session.execute(
                delete(PlanShareRow).where(
                    PlanShareRow.job_id.in_(list(job_ids)), PlanShareRow.state == PlanShareState.PLANNED
                )
            )

    def _give_back_in(self, session: Session, job_id: str, owner: str, leader: str, until: datetime) -> None:
        key = _plan_task(job_id)
        session.execute(
            update(TaskRow)
            .where(
                TaskRow.job_id == key.job_id,
                TaskRow.kind == key.kind,
                TaskRow.node == key.node,
                TaskRow.idx == key.idx,
                TaskRow.state == TaskState.RUNNING,
                TaskRow.owner == owner,
            )
            .values(
                state=TaskState.QUEUED,
                owner=None,
                lease_until=until,
                error=f"waiting for the plan of staging {leader}",
                updated_at=_now(),
            )
        )

    def _wake_in(self, session: Session, key: str, now: datetime) -> list[TaskKey]:
        waiting = list(session.scalars(select(PlanWaiterRow.job_id).where(PlanWaiterRow.key == key)))
        if not waiting:
            return []
        session.execute(delete(PlanWaiterRow).where(PlanWaiterRow.key == key))
        woken = session.scalars(
            update(TaskRow)
            .where(
                TaskRow.job_id.in_(waiting),
                TaskRow.kind == "plan",
                TaskRow.node == "",
                TaskRow.state == TaskState.QUEUED,
            )
            .values(lease_until=now + self.lease, updated_at=now)
            .returning(TaskRow.job_id)
        ).all()
        return [_plan_task(job_id) for job_id in woken]
