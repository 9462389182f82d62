"""The workers' side of service stagings: plan decided (denied or admitted to nodes), a node's
dataset written, the staging complete or failed.

Every state change and the audit event telling of it commit in one transaction, so the
trail holds exactly one ``stage.completed`` per staging however often a step is retried or
repeated by the reconciler. Functions return the tasks the caller must send to the broker
*after* the commit: a task row exists before any message does.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from stagegate.actions import AuditAction
from stagegate.errors import NotFoundError
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.database import Ledger
from stagegate.ledger.delta_accounting import bytes_from_cache, delta_admission, kept_for_takes
from stagegate.ledger.events import job_event
from stagegate.ledger.fanout import SOURCE, origins_in
from stagegate.ledger.label_quarantine import QuarantinedError, check_not_quarantined
from stagegate.ledger.models import JobRow, NodeDatasetRow, NodeRow, PinRow, TaskRow
from stagegate.ledger.nodes import dataset_path, held_in
from stagegate.ledger.plan_shares import SharedPlan
from stagegate.ledger.redact import redact_text
from stagegate.ledger.tasks import BatchRange, TaskKey, Tasks, new_task
from stagegate.ledger.transaction_local import kept_or_new
from stagegate.states import STAGING_TERMINAL, DatasetState, StagingState, TaskState


@dataclass(frozen=True, slots=True)
class StagingJob:
    """What a worker needs to carry out a staging: whose it is and what they asked for."""

    id: str
    state: str
    source: str
    actor: str
    project: str | None
    mode: str
    nodes: tuple[str, ...]
    job_ref: str | None
    manifest_digest: str | None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # The staging whose manifest and label files hold this one's plan: itself, unless it
    # followed a shared plan (ledger.plan_shares).
    plan_job: str = ""
    # What it asks to be planned (source, mode, any filters), as the key shared plans use.
    request_part: str = ""


def filters_of(row: JobRow) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A staging's ``include`` and ``exclude`` patterns, from its params (stagings from before
    filters have none)."""
    params = json.loads(row.params or "{}")
    return tuple(params.get("include") or ()), tuple(params.get("exclude") or ())


@dataclass(frozen=True, slots=True)
class NodePortion:
    """What one node will hold: its share of the plan, and the batches that copy it."""

    node: str
    digest: str
    files: int
    bytes: int
    batches: Sequence[BatchRange]
    # Of ``bytes``, those ready datasets on the node already hold, by the dataset a take would
    # use (delta staging: the worker's count from the manifests).
    held_by: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Following:
    """A staging to follow a shared plan with others (``StagingSteps.follow_all``): what each
    of its nodes will hold, and what its ``policy.allowed`` records of the plan."""

    job_id: str
    portions: Sequence[NodePortion]
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class Admitted:
    state: str  # transferring | ready | failed
    to_send: list[TaskKey]
    error: str | None = None


class RetryLaterError(Exception):
    """A transient conflict: run the step again a little later."""


def _int_or_none(n: object) -> int | None:
    return None if n is None else int(n)  # type: ignore[call-overload]  # a SUM: int or Decimal


def _now() -> datetime:
    return datetime.now(UTC)


class StagingSteps:
    """The state changes node workers (and the reconciler) make to service stagings."""

    def __init__(self, ledger: Ledger, lease_seconds: float = 120.0) -> None:
        self._ledger = ledger
        self._tasks = Tasks(ledger, lease_seconds)

    def job(self, job_id: str) -> StagingJob:
        with self._ledger.read_session() as session, session.begin():
            row = session.get(JobRow, job_id)
            if row is None or row.mode is None:
                raise NotFoundError(f"no staging {job_id}")
            return _staging_job(row)

    def jobs(self, job_ids: Sequence[str]) -> list[StagingJob]:
        """The service stagings among ``job_ids`` (in one read), in no particular order."""
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(
                select(JobRow).where(JobRow.id.in_(list(job_ids)), JobRow.mode.is_not(None))
            )
            return [_staging_job(row) for row in rows]

    def begin_planning(self, job_id: str) -> bool:
        """pending -> planning; False if the staging is past planning (a repeated message)."""
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_((StagingState.PENDING, StagingState.PLANNING)))
                .values(state=StagingState.PLANNING, updated_at=_now())
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def record_listing(self, job_id: str, objects: int, nbytes: int) -> None:
        """How far the plan step has listed the source: kept in the job's files and bytes while
        it plans (``record_plan`` then writes the plan's own counts), so a planning staging's
        view can say how many objects were found so far."""
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == StagingState.PLANNING)
                .values(files=objects, bytes=nbytes)
            )

    def record_plan(self, job_id: str, digest: str, files: int, nbytes: int, policy_version: str) -> None:
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(manifest_digest=digest, files=files, bytes=nbytes, policy_version=policy_version)
            )

    def follow_plan(self, job_id: str, plan: SharedPlan) -> None:
        """Record that the staging uses ``plan`` (another staging's): its totals, no rows."""
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == StagingState.PLANNING)
                .values(
                    plan_job=plan.job_id,
                    manifest_digest=plan.digest,
                    files=plan.files,
                    bytes=plan.bytes,
                    policy_version=plan.policy_version,
                )
            )

    def deny(
        self, job_id: str, plan: TaskKey, owner: str, reasons: Sequence[str], details: dict[str, object]
    ) -> None:
        with self._ledger.sessions.begin() as session:
            job = lock_staging(session, job_id)
            if job.state != StagingState.PLANNING:
                return
            job.state, job.updated_at = StagingState.DENIED, _now()
            job.error = redact_text("; ".join(reasons))
            self._tasks.finish_in(session, plan, owner, 0, 0)
            session.flush()
            AuditTrail.append_in(
                session.connection(),
                job_event(
                    job, AuditAction.POLICY_DENIED, decision="deny", reasons=tuple(reasons), details=details
                ),
            )

    def admit(
        self,
        job_id: str,
        plan: TaskKey,
        owner: str,
        portions: Sequence[NodePortion],
        details: dict[str, object],
    ) -> Admitted:
        """The policy allowed the staging: pin what each node already holds, admit (evicting as
        needed) what it must copy, create the copy tasks. All nodes or none: a node without
        room fails the staging, and nothing is evicted for it."""
        try:
            return self._admit(job_id, plan, owner, portions, details)
        except QuarantinedError as exc:
            # Its labels rose since it was cached: a clear denial, never a hit.
            self.deny(job_id, plan, owner, [str(exc)], details)
            return Admitted(StagingState.DENIED, [], str(exc))
        except NoRoomError as exc:
            with self._ledger.sessions.begin() as session:
                job = lock_staging(session, job_id)
                if job.state != StagingState.PLANNING:
                    return Admitted(job.state, [])
                AuditTrail.append_in(
                    session.connection(),
                    job_event(job, AuditAction.POLICY_ALLOWED, decision="allow", details=details),
                )
                self._tasks.finish_in(session, plan, owner, 0, 0)
                self._fail_locked(session, job, f"not admitted: {exc}")
            return Admitted(StagingState.FAILED, [], str(exc))

    def follow_all(self, owner: str, plan: SharedPlan, following: Sequence[Following]) -> list[TaskKey]:
        """Have each staging of ``following``, whose plan task ``owner`` holds, follow ``plan``
        (another staging's, allowed) and be admitted, all in one transaction: a burst of
        identical requests costs one commit and one hold of the audit chain's append lock, not
        one of each per request. Each is still decided and audited on its own (its own
        ``policy.allowed``, with ``plan_of``); one past planning (released meanwhile) just has
        its plan task finished. Returns the cache-hit checks to send after the commit (a node
        it must copy to is the caller's to send, ``Tasks.next_to_send``). Raises what admission
        raises (a quarantined copy, no room, a dataset being deleted): then nothing is
        committed, and the caller follows each on its own."""
        with self._ledger.sessions.begin() as session:
            admitted = []
            # Their events last: the chain's writers (every submission) wait for its lock only
            # through the INSERT and the commit, not through fifty admissions.
            with AuditTrail.appending_last(session.connection()):
                for follower in sorted(following, key=lambda f: f.job_id):  # one lock order
                    key = TaskKey(follower.job_id, "plan", "", 0)
                    job = lock_staging(session, follower.job_id)
                    if job.state not in (StagingState.PENDING, StagingState.PLANNING):
                        self._tasks.finish_in(session, key, owner, 0, 0)
                        continue
                    self._tasks.finish_in(session, key, owner, 0, 0)
                    follow_in(session, job, plan, follower.portions, follower.details)
                    admitted.append(job.id)
                checks = Tasks.queue_waiting_checks_in(session, admitted, self._tasks.lease)
            return checks

    def _admit(
        self,
        job_id: str,
        plan: TaskKey,
        owner: str,
        portions: Sequence[NodePortion],
        details: dict[str, object],
    ) -> Admitted:
        with self._ledger.sessions.begin() as session:
            job = lock_staging(session, job_id)
            if job.state != StagingState.PLANNING:
                return Admitted(job.state, [])
            self._tasks.finish_in(session, plan, owner, 0, 0)
            admit_in(session, job, portions, details)
        return Admitted(self.job(job_id).state, self._tasks.next_to_send(job_id))

    def dataset_ready(
        self, job_id: str, finalize: TaskKey, owner: str, fingerprint: str | None = None
    ) -> list[str]:
        """A node finished writing: its dataset is ready, sealed with ``fingerprint``. Returns the
        stagings that pin it (they may now be complete)."""
        with self._ledger.sessions.begin() as session:
            pin = session.scalar(select(PinRow).where(PinRow.job_id == job_id, PinRow.node == finalize.node))
            digest = pin.digest if pin is not None else None
            if digest is None:  # released meanwhile: the dataset is written all the same
                digest = session.scalar(
                    select(NodeDatasetRow.digest).where(
                        NodeDatasetRow.node == finalize.node, NodeDatasetRow.writer_job == job_id
                    )
                )
            self._tasks.finish_in(session, finalize, owner, 0, 0)
            if digest is None:
                return []
            session.execute(
                update(NodeDatasetRow)
                .where(NodeDatasetRow.node == finalize.node, NodeDatasetRow.digest == digest)
                .where(NodeDatasetRow.state == DatasetState.WRITING)
                .values(
                    state=DatasetState.READY,
                    last_used=_now(),
                    fingerprint=fingerprint,
                    scrubbed_at=None,
                    # Written: what it shares is counted from the disk from here on (the worker
                    # recounts where it links files), and it needs no dataset kept any more.
                    unique_bytes=None,
                    sole_bytes=None,
                    takes_from=None,
                )
            )
            return list(
                session.scalars(
                    select(PinRow.job_id).where(PinRow.node == finalize.node, PinRow.digest == digest)
                )
            )

    def complete_if_ready(self, job_id: str) -> bool:
        """transferring -> ready once every node holds its dataset ready; audited once."""
        with self._ledger.sessions.begin() as session:
            return self.complete_in(session, lock_staging(session, job_id))

    @staticmethod
    def complete_in(session: Session, job: JobRow) -> bool:
        """Inside the caller's transaction, with ``job`` locked: as :meth:`complete_if_ready`."""
        if job.state != StagingState.TRANSFERRING:
            return False
        nodes = json.loads(job.nodes or "[]")
        rows = session.execute(
            select(PinRow.node, NodeDatasetRow)
            .join(
                NodeDatasetRow,
                (NodeDatasetRow.node == PinRow.node) & (NodeDatasetRow.digest == PinRow.digest),
            )
            .where(PinRow.job_id == job.id, NodeDatasetRow.state == DatasetState.READY)
        ).all()
        if len(rows) != len(nodes) or unverified_hits(session, job.id):
            return False
        job.state, job.updated_at = StagingState.READY, _now()
        session.flush()
        details: dict[str, object] = {"paths": dict(sorted((node, d.path) for node, d in rows))}
        # Delta staging: bytes of the nodes it wrote that it took from datasets already cached
        # there (linked, reflinked or copied), not read from the source (usage counts them so).
        taken = dict(
            session.execute(
                select(TaskRow.node, func.sum(TaskRow.taken_bytes))
                .where(TaskRow.job_id == job.id, TaskRow.kind == "copy", TaskRow.state == TaskState.DONE)
                .group_by(TaskRow.node)
            ).all()
        )
        from_cache = {
            node: n
            for node, d in rows
            if d.writer_job == job.id
            and (n := bytes_from_cache(d.bytes, d.unique_bytes, _int_or_none(taken.get(node)))) > 0
        }
        if from_cache:
            details["node_bytes_from_cache"] = dict(sorted(from_cache.items()))
        origins = origins_in(session, job.id)
        if any(origin != SOURCE for by_origin in origins.values() for origin in by_origin):
            # Fan-out: which node copied how many bytes from which peer, and from the source.
            details["copied_from"] = {node: origins[node] for node in sorted(origins)}
        event = job_event(job, AuditAction.STAGE_COMPLETED, details=details)
        AuditTrail.append_in(session.connection(), event)
        return True

    def fail(self, job_id: str, error: str) -> None:
        with self._ledger.sessions.begin() as session:
            job = lock_staging(session, job_id)
            if job.state in STAGING_TERMINAL:
                return
            self._fail_locked(session, job, error)

    def _fail_locked(self, session: Session, job: JobRow, error: str) -> None:
        let_go(session, job, keep_for_others=False)
        job.state, job.updated_at, job.error = StagingState.FAILED, _now(), redact_text(error)
        session.flush()
        AuditTrail.append_in(
            session.connection(),
            job_event(job, AuditAction.STAGE_FAILED, reasons=(error,), details={"error": redact_text(error)}),
        )
        # Stagings waiting for a dataset this one was writing will not get it from this writer.
        waiting = session.scalars(
            select(PinRow.job_id)
            .join(
                NodeDatasetRow,
                (NodeDatasetRow.node == PinRow.node) & (NodeDatasetRow.digest == PinRow.digest),
            )
            .where(
                NodeDatasetRow.writer_job == job.id,
                NodeDatasetRow.state == DatasetState.EVICTING,
                PinRow.job_id != job.id,
            )
        ).all()
        for other_id in waiting:
            other = lock_staging(session, other_id)
            if other.state not in STAGING_TERMINAL:
                self._fail_locked(
                    session, other, f"the staging writing its dataset ({job.id}) failed: {error}"
                )

    def not_yet_planned(self, source: str, but: str, limit: int = 1000) -> list[str]:
        """Other stagings of ``source`` still pending or planning, oldest first: candidates to
        follow a plan just made or found (each is checked on its own before it does)."""
        with self._ledger.read_session() as session, session.begin():
            return list(
                session.scalars(
                    select(JobRow.id)
                    .where(
                        JobRow.kind == "stage",
                        JobRow.source == source,
                        JobRow.state.in_((StagingState.PENDING, StagingState.PLANNING)),
                        JobRow.id != but,
                    )
                    .order_by(JobRow.created_at)
                    .limit(limit)
                )
            )

    def transferring(self) -> list[str]:
        """The stagings still transferring that :meth:`complete_if_ready` could complete now:
        not those with a cache hit still unchecked (its check completes them; until then
        ``complete_in`` refuses), so a burst of hits costs the reconciler no lock each."""
        unchecked = select(TaskRow.job_id).where(
            TaskRow.job_id == JobRow.id, TaskRow.kind == "verify", TaskRow.state != TaskState.DONE
        )
        with self._ledger.read_session() as session, session.begin():
            return list(
                session.scalars(
                    select(JobRow.id).where(JobRow.state == StagingState.TRANSFERRING, ~unchecked.exists())
                )
            )


# Columns that say who asked, onto which nodes and how it went: never what is planned. Every
# other column (source, mode, parameters, and any a later revision adds, such as filters) is
# part of the request's plan, so requests differing in it never share one.
NOT_PLANNED = frozenset(
    {
        "id", "kind", "state", "actor", "role", "job_ref", "destination", "manifest_digest", "files",
        "bytes", "policy_version", "error", "created_at", "updated_at", "project", "nodes",
        "idempotency_key", "started_at", "plan_job",
    }
)  # fmt: skip


def _staging_job(row: JobRow) -> StagingJob:
    include, exclude = filters_of(row)
    return StagingJob(
        include=include,
        exclude=exclude,
        id=row.id,
        state=row.state,
        source=row.source,
        actor=row.actor,
        project=row.project,
        mode=row.mode or "replicate",
        nodes=tuple(json.loads(row.nodes or "[]")),
        job_ref=row.job_ref,
        manifest_digest=row.manifest_digest,
        plan_job=row.plan_job or row.id,
        request_part=request_part(row),
    )


# A cached dataset's ``last_used`` (its place in the eviction order) moves on at most this often:
# a hit within it leaves the row unwritten, so a burst of hits on one copy shares its lock
# (lock_cached).
TOUCH_STEP = timedelta(seconds=1)
# Kept for the transaction (ledger.transaction_local): the cached datasets it locked, and
# whether exclusively.
_CACHED_LOCKS = "stagegate.cached_locks"


@dataclass(frozen=True, slots=True)
class CachedLock:
    """A node's row of a dataset, locked until the caller's commit; ``exclusive`` says whether
    this transaction may write it (a shared lock must not be raised: two raising deadlock)."""

    row: NodeDatasetRow | None
    exclusive: bool


def lock_cached(session: Session, node: str, digest: str, now: datetime) -> CachedLock:
    """``node``'s row of ``digest``, locked until the caller's commit. Shared (FOR SHARE) where
    admission only pins it: a ready copy (a hit) or one another staging is writing. A burst of
    requests for one cached dataset then waits for none of the others' locks, while an eviction
    or deletion waits for them all. Exclusive where it must write: a copy marked for eviction
    (a hit saves it), and a ready copy not used within ``TOUCH_STEP`` (a hit moves it to the
    back of the eviction order), that one only if no one holds the row: a pinned copy is
    evicted by no one, so the move is not worth a wait (and a queue behind it). Locked once
    per transaction: asked again, the same lock is answered."""
    key = (node, digest)
    held: dict[tuple[str, str], CachedLock] = kept_or_new(session.connection(), _CACHED_LOCKS, dict)
    if key not in held:
        held[key] = _lock_cached(session, key, now)  # the row kept too: the session holds it weakly
    return held[key]


def _lock_cached(session: Session, key: tuple[str, str], now: datetime) -> CachedLock:
    seen = session.get(NodeDatasetRow, key)
    if seen is not None and seen.state == DatasetState.READY and seen.last_used <= now - TOUCH_STEP:
        free = session.get(NodeDatasetRow, key, with_for_update={"skip_locked": True}, populate_existing=True)
        if free is not None:
            return CachedLock(free, True)
    exclusive = seen is None or seen.state not in (DatasetState.READY, DatasetState.WRITING)
    row = session.get(
        NodeDatasetRow, key, with_for_update=True if exclusive else {"read": True}, populate_existing=True
    )
    # Its state as locked may differ from the look (marked for eviction in between): the
    # caller, holding it shared, then does not write it (never raising a shared lock, which
    # deadlocks two that do) but asks again in a new transaction.
    return CachedLock(row, exclusive)


def follow_in(
    session: Session,
    job: JobRow,
    plan: SharedPlan,
    portions: Sequence[NodePortion],
    details: dict[str, object],
) -> None:
    """Inside the caller's transaction: ``job`` takes another staging's ``plan`` as its own
    (what it holds, under which policy version) and is admitted on it (:func:`admit_in`)."""
    job.state, job.plan_job = StagingState.PLANNING, plan.job_id
    job.manifest_digest, job.files = plan.digest, plan.files
    job.bytes, job.policy_version = plan.bytes, plan.policy_version
    admit_in(session, job, portions, details)


def admit_in(
    session: Session, job: JobRow, portions: Sequence[NodePortion], details: dict[str, object]
) -> None:
    """Inside the caller's transaction, with ``job`` locked (or just added) and its plan decided
    (``StagingSteps.admit``, ``follow_all``; ``StagingRequests.submit`` following a fresh plan):
    pin what each node holds, admit what it must copy (evicting as needed), create the tasks and
    audit the decision. Finishing the plan task, if there is one, is the caller's."""
    now = _now()
    nodes: dict[str, tuple[str, int]] = {}  # name -> (root, capacity): read once, and only to copy
    hits: list[str] = []
    copied: list[str] = []  # nodes where this staging writes the dataset itself
    for portion in portions:
        node = portion.node
        lock = lock_cached(session, node, portion.digest, now)
        existing = lock.row
        if existing is not None and existing.state == DatasetState.DELETING:
            raise RetryLaterError(f"node {node} is deleting this dataset right now")
        check_not_quarantined(session, node, portion.digest)
        if existing is not None and existing.state in (DatasetState.READY, DatasetState.EVICTING):
            if existing.state == DatasetState.EVICTING and not lock.exclusive:
                raise RetryLaterError(f"node {node} marked this dataset for eviction just now")
            if lock.exclusive:  # a hit saves it from eviction (and moves it to the back of the order)
                existing.state, existing.last_used = DatasetState.READY, now
            hits.append(node)
            # It counts once the node's worker has checked the copy against its
            # fingerprint; the share's key range lets it copy afresh if the check fails.
            session.add(new_task(TaskKey(job.id, "verify", node, 0), TaskState.WAITING, share(portion)))
        elif existing is None:
            copied.append(node)
            if not nodes:
                found = session.execute(select(NodeRow.name, NodeRow.root, NodeRow.capacity))
                nodes = {name: (root, capacity) for name, root, capacity in found}
            # Delta staging: room only for what the cached datasets do not hold, and
            # those kept until it is written (held_in keeps them from then on).
            on_node = held_in(session, node)
            delta = delta_admission(portion.bytes, portion.held_by, on_node)
            on_node = kept_for_takes(on_node, set(delta.takes_from))
            evict = choose_evictions(node, nodes[node][1], on_node, delta.adds)
            if evict:
                session.execute(
                    update(NodeDatasetRow)
                    .where(NodeDatasetRow.node == node, NodeDatasetRow.digest.in_(evict))
                    .values(state=DatasetState.EVICTING)
                )
            session.add(
                NodeDatasetRow(
                    node=node,
                    digest=portion.digest,
                    path=dataset_path(nodes[node][0], portion.digest),
                    files=portion.files,
                    bytes=portion.bytes,
                    state=DatasetState.WRITING,
                    writer_job=job.id,
                    created_at=now,
                    last_used=now,
                    # Its share of the disk while written (what it adds), and what it takes from.
                    unique_bytes=delta.adds if delta.takes_from else None,
                    takes_from=json.dumps(delta.takes_from) if delta.takes_from else None,
                )
            )
            for idx, batch in enumerate(portion.batches):
                session.add(new_task(TaskKey(job.id, "copy", node, idx), TaskState.WAITING, batch))
            session.add(new_task(TaskKey(job.id, "finalize", node, 0), TaskState.WAITING))
        # else: another staging is writing it right now; this one waits for it.
        session.add(PinRow(job_id=job.id, node=node, digest=portion.digest, created_at=now))
    node_bytes = {q.node: q.bytes for q in portions}
    job.state, job.updated_at, job.started_at = StagingState.TRANSFERRING, now, now
    session.flush()
    AuditTrail.append_in(
        session.connection(),
        job_event(
            job,
            AuditAction.POLICY_ALLOWED,
            decision="allow",
            # What each node now holds for this staging (pinned from here until release):
            # usage reports bill NVMe byte-hours from it.
            details={**details, "cache_hits": hits, "copied": copied, "node_bytes": node_bytes},
        ),
    )
    # Nothing to copy and nothing to check (no node a hit): ready in the same commit. A hit is
    # ready only once its node checked the copy (the verify task just added), so not yet.
    if not hits:
        StagingSteps.complete_in(session, job)


def request_part(row: JobRow) -> str:
    """The canonical text of what ``row`` asks to be planned."""
    planned = {c.key: getattr(row, c.key) for c in JobRow.__table__.columns if c.key not in NOT_PLANNED}
    return json.dumps(planned, sort_keys=True, default=str)


def lock_staging(session: Session, job_id: str) -> JobRow:
    """The staging's row, locked for the rest of the caller's transaction."""
    job = session.get(JobRow, job_id, with_for_update=True)
    if job is None:
        raise NotFoundError(f"no staging {job_id}")
    return job


def let_go(session: Session, job: JobRow, *, keep_for_others: bool) -> None:
    """Drop the job's pins and stop its unfinished work. A half-written dataset is evicted,
    unless ``keep_for_others`` (a release, not a failure) and another staging waits for it:
    then its batches go on for that staging."""
    pins = session.scalars(select(PinRow).where(PinRow.job_id == job.id)).all()
    session.execute(delete(PinRow).where(PinRow.job_id == job.id))
    for pin in pins:
        dataset = session.get(NodeDatasetRow, (pin.node, pin.digest), with_for_update=True)
        if dataset is None or dataset.writer_job != job.id or dataset.state != DatasetState.WRITING:
            continue
        waited_for = session.scalar(
            select(PinRow.job_id).where(PinRow.node == pin.node, PinRow.digest == pin.digest).limit(1)
        )
        if keep_for_others and waited_for is not None:
            continue
        dataset.state = DatasetState.EVICTING
        Tasks.cancel_in(session, job.id, pin.node)
    Tasks.cancel_in(session, job.id, "")  # the plan, if it has not run yet


def share(portion: NodePortion) -> BatchRange | None:
    """The key range and totals of a node's whole share, or None for an empty one."""
    if not portion.batches:
        return None
    first, last = portion.batches[0], portion.batches[-1]
    return BatchRange(first.key_from, last.key_to, portion.files, portion.bytes)


def unverified_hits(session: Session, job_id: str) -> list[str]:
    """The nodes where the job's cache hit is not yet checked."""
    return list(
        session.scalars(
            select(TaskRow.node).where(
                TaskRow.job_id == job_id, TaskRow.kind == "verify", TaskRow.state != TaskState.DONE
            )
        )
    )
