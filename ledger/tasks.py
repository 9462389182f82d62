"""Queued work with leases: the ledger decides what must run, the broker only carries it.

A task is sent with a lease; a worker claims it (state ``running``) and renews the lease while
it works. A task whose lease ran out was lost (the worker died, the broker forgot the
message), and the reconciler sends it again. A claim is a conditional update, so however
many copies of a message arrive, one worker at a time runs the task, and a finished task is
never run again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Update, func, select, update
from sqlalchemy.orm import Session

from stagegate.ledger.database import Ledger
from stagegate.ledger.models import TaskRow
from stagegate.ledger.redact import redact_text
from stagegate.states import TaskState

ACTIVE = (TaskState.QUEUED, TaskState.RUNNING)
# Copy batches of one staging on one node that are queued or running at once. A window, not
# the whole list: a big staging's thousands of batches would otherwise sit in the broker,
# each one re-sent by the reconciler whenever its lease ran out while it waited.
WINDOW = 2


@dataclass(frozen=True, slots=True)
class TaskKey:
    """What a task message carries: identifiers only, never a URL or a credential."""

    job_id: str
    kind: str  # plan | copy | finalize | verify | egress
    node: str  # '' for the plan
    idx: int

    def to_message(self) -> dict[str, object]:
        return {"job_id": self.job_id, "kind": self.kind, "node": self.node, "idx": self.idx}


@dataclass(frozen=True, slots=True)
class Task:
    key: TaskKey
    state: str
    key_from: str | None
    key_to: str | None
    files: int
    bytes: int
    files_done: int
    bytes_done: int
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class BatchRange:
    """A copy batch: a contiguous, inclusive key range of the manifest."""

    key_from: str
    key_to: str
    files: int
    bytes: int


def _now() -> datetime:
    return datetime.now(UTC)


def _where(key: TaskKey) -> list[ColumnElement[bool]]:
    return [
        TaskRow.job_id == key.job_id,
        TaskRow.kind == key.kind,
        TaskRow.node == key.node,
        TaskRow.idx == key.idx,
    ]


def _claimable(owner: str, now: datetime) -> ColumnElement[bool]:
    """Not finished, cancelled, or running elsewhere under a live lease."""
    return (TaskRow.state.in_((TaskState.WAITING, TaskState.QUEUED))) | (
        (TaskRow.state == TaskState.RUNNING) & ((TaskRow.lease_until < now) | (TaskRow.owner == owner))
    )


def _order(key: TaskKey) -> tuple[str, str, str, int]:
    return (key.job_id, key.kind, key.node, key.idx)


def _to_task(row: TaskRow) -> Task:
    return Task(
        key=TaskKey(row.job_id, row.kind, row.node, row.idx),
        state=row.state,
        key_from=row.key_from,
        key_to=row.key_to,
        files=row.files,
        bytes=row.bytes,
        files_done=row.files_done,
        bytes_done=row.bytes_done,
        attempts=row.attempts,
        error=row.error,
    )


def new_task(key: TaskKey, state: TaskState, batch: BatchRange | None = None, lease: float = 0) -> TaskRow:
    now = _now()
    return TaskRow(
        job_id=key.job_id,
        kind=key.kind,
        node=key.node,
        idx=key.idx,
        state=state.value,
        key_from=batch.key_from if batch else None,
        key_to=batch.key_to if batch else None,
        files=batch.files if batch else 0,
        bytes=batch.bytes if batch else 0,
        files_done=0,
        bytes_done=0,
        attempts=0,
        lease_until=now + timedelta(seconds=lease) if state is TaskState.QUEUED else None,
        owner=None,
        error=None,
        updated_at=now,
    )


class Tasks:
    """The task table of one ledger."""

    def __init__(self, ledger: Ledger, lease_seconds: float) -> None:
        self._ledger = ledger
        self.lease = timedelta(seconds=lease_seconds)

    def get(self, key: TaskKey) -> Task | None:
        with self._ledger.read_session() as session, session.begin():
            row = session.scalar(select(TaskRow).where(*_where(key)))
            return None if row is None else _to_task(row)

    def of_job(self, job_id: str) -> list[Task]:
        with self._ledger.read_session() as session, session.begin():
            rows = session.scalars(
                select(TaskRow)
                .where(TaskRow.job_id == job_id)
                .order_by(TaskRow.kind, TaskRow.node, TaskRow.idx)
            )
            return [_to_task(r) for r in rows]

    def claim(self, key: TaskKey, owner: str) -> Task | None:
        """Take ``key`` to run it, or None if it is finished, cancelled, or running elsewhere
        under a live lease (a duplicate message)."""
        with self._ledger.sessions.begin() as session:
            result = session.execute(self._take(key, owner, _now()))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = session.scalar(select(TaskRow).where(*_where(key)))
            assert row is not None
            return _to_task(row)

    def claim_many(self, keys: Sequence[TaskKey], owner: str) -> dict[TaskKey, int]:
        """Take each of ``keys`` as :meth:`claim` does, in one short transaction (a burst of
        identical requests: one commit, not one each); returns those taken, with their attempts.
        Committed before the caller works on them, so no lock on a task row is held while it
        does (two workers taking overlapping sets wait for each other's commit, never deadlock)."""
        now = _now()
        taken: dict[TaskKey, int] = {}
        with self._ledger.sessions.begin() as session:
            for key in sorted(keys, key=_order):  # one order for every worker
                attempts = session.scalar(self._take(key, owner, now).returning(TaskRow.attempts))
                if attempts is not None:
                    taken[key] = int(attempts)
        return taken

    def _take(self, key: TaskKey, owner: str, now: datetime) -> Update:
        """The statement that takes ``key`` for ``owner`` if it may be taken (:func:`_claimable`)."""
        return (
            update(TaskRow)
            .where(*_where(key), _claimable(owner, now))
            .values(
                state=TaskState.RUNNING,
                owner=owner,
                lease_until=now + self.lease,
                attempts=TaskRow.attempts + 1,
                updated_at=now,
            )
        )

    def renew(self, key: TaskKey, owner: str, files_done: int, bytes_done: int) -> bool:
        """Extend the lease and record progress; False if the task is no longer ours (cancelled,
        or taken over after our lease ran out): the worker must stop."""
        now = _now()
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(TaskRow)
                .where(*_where(key), TaskRow.state == TaskState.RUNNING, TaskRow.owner == owner)
                .values(
                    lease_until=now + self.lease, files_done=files_done, bytes_done=bytes_done, updated_at=now
                )
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    @staticmethod
    def finish_in(
        session: Session,
        key: TaskKey,
        owner: str,
        files_done: int,
        bytes_done: int,
        origin: str | None = None,
        taken_bytes: int | None = None,
    ) -> bool:
        """Mark the task done inside the caller's transaction (a copy batch with where it read
        its bytes, ``origin``, and those of them it took from the node's cache,
        ``taken_bytes``); False if it was no longer ours."""
        result = session.execute(
            update(TaskRow)
            .where(*_where(key), TaskRow.state == TaskState.RUNNING, TaskRow.owner == owner)
            .values(
                state=TaskState.DONE,
                files_done=files_done,
                bytes_done=bytes_done,
                lease_until=None,
                updated_at=_now(),
                origin=origin,
                taken_bytes=taken_bytes,
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def finish(
        self,
        key: TaskKey,
        owner: str,
        files_done: int = 0,
        bytes_done: int = 0,
        origin: str | None = None,
        taken_bytes: int | None = None,
    ) -> bool:
        with self._ledger.sessions.begin() as session:
            return self.finish_in(session, key, owner, files_done, bytes_done, origin, taken_bytes)

    def retry_later(self, key: TaskKey, owner: str, error: str, delay: float) -> None:
        """Give the task back after a failed attempt: the reconciler sends it again once
        ``delay`` has passed (the lease is the timer)."""
        now = _now()
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(TaskRow)
                .where(*_where(key), TaskRow.state == TaskState.RUNNING, TaskRow.owner == owner)
                .values(
                    state=TaskState.QUEUED,
                    owner=None,
                    lease_until=now + timedelta(seconds=delay),
                    error=redact_text(error),
                    updated_at=now,
                )
            )

    @staticmethod
    def fail_in(session: Session, key: TaskKey, error: str) -> None:
        session.execute(
            update(TaskRow)
            .where(*_where(key))
            .values(state=TaskState.FAILED, error=redact_text(error), lease_until=None, updated_at=_now())
        )

    @staticmethod
    def cancel_in(session: Session, job_id: str, node: str | None = None) -> None:
        """Cancel the job's unfinished tasks (on one node, or all): a running one stops at its
        next lease renewal."""
        conditions = [
            TaskRow.job_id == job_id,
            TaskRow.state.in_((TaskState.WAITING, TaskState.QUEUED, TaskState.RUNNING)),
        ]
        if node is not None:
            conditions.append(TaskRow.node == node)
        session.execute(
            update(TaskRow)
            .where(*conditions)
            .values(state=TaskState.CANCELLED, lease_until=None, updated_at=_now())
        )

    @staticmethod
    def queue_waiting_checks_in(session: Session, job_ids: Sequence[str], lease: timedelta) -> list[TaskKey]:
        """Inside the caller's transaction: the jobs' waiting cache-hit checks (``verify``), queued
        with a lease (what :meth:`next_to_send` and :meth:`mark_sent` do for them, in one
        statement); returns them, to send after the commit."""
        if not job_ids:
            return []
        now = _now()
        rows = session.execute(
            update(TaskRow)
            .where(
                TaskRow.job_id.in_(list(job_ids)),
                TaskRow.kind == "verify",
                TaskRow.state == TaskState.WAITING,
            )
            .values(state=TaskState.QUEUED, lease_until=now + lease, updated_at=now)
            .returning(TaskRow.job_id, TaskRow.node)
        ).all()
        return [TaskKey(job_id, "verify", node, 0) for job_id, node in rows]

    def mark_sent(self, keys: list[TaskKey]) -> list[TaskKey]:
        """Move waiting tasks to queued with a fresh lease; returns those this caller moved
        (and must now send)."""
        moved = []
        now = _now()
        with self._ledger.sessions.begin() as session:
            for key in keys:
                result = session.execute(
                    update(TaskRow)
                    .where(*_where(key), TaskRow.state == TaskState.WAITING)
                    .values(state=TaskState.QUEUED, lease_until=now + self.lease, updated_at=now)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    moved.append(key)
        return moved

    def take_expired(self, limit: int = 500) -> list[TaskKey]:
        """Queued or running tasks whose lease ran out, each given a fresh lease by this call
        (so of several reconcilers, exactly one re-sends it)."""
        now = _now()
        taken: list[TaskKey] = []
        with self._ledger.sessions.begin() as session:
            rows = session.execute(
                select(TaskRow.job_id, TaskRow.kind, TaskRow.node, TaskRow.idx, TaskRow.lease_until)
                .where(TaskRow.state.in_(ACTIVE), TaskRow.lease_until < now)
                .limit(limit)
            ).all()
            for row in rows:
                key = TaskKey(row.job_id, row.kind, row.node, row.idx)
                result = session.execute(
                    update(TaskRow)
                    .where(*_where(key), TaskRow.state.in_(ACTIVE), TaskRow.lease_until == row.lease_until)
                    .values(state=TaskState.QUEUED, owner=None, lease_until=now + self.lease, updated_at=now)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(key)
        return taken

    def next_to_send(self, job_id: str, node: str | None = None) -> list[TaskKey]:
        """The waiting tasks of ``job_id`` (on ``node``, or every node) that may be sent now: copy
        batches up to the window on each node, and a node's finalize once all its batches are
        done. Counted in SQL: a staging of 100 TB has about 100,000 batches per node."""
        mine = [TaskRow.job_id == job_id] + ([TaskRow.node == node] if node is not None else [])
        ready: list[TaskKey] = []
        with self._ledger.read_session() as session, session.begin():
            counts: dict[str, dict[str, int]] = {}
            for task_node, state, n in session.execute(
                select(TaskRow.node, TaskRow.state, func.count())
                .where(*mine, TaskRow.kind == "copy")
                .group_by(TaskRow.node, TaskRow.state)
            ):
                counts.setdefault(task_node, {})[state] = int(n)
            for task_node, by_state in counts.items():
                room = WINDOW - sum(by_state.get(state, 0) for state in ACTIVE)
                if room > 0 and by_state.get(TaskState.WAITING):
                    idxs = session.scalars(
                        select(TaskRow.idx)
                        .where(
                            TaskRow.job_id == job_id,
                            TaskRow.kind == "copy",
                            TaskRow.node == task_node,
                            TaskRow.state == TaskState.WAITING,
                        )
                        .order_by(TaskRow.idx)
                        .limit(room)
                    )
                    ready.extend(TaskKey(job_id, "copy", task_node, idx) for idx in idxs)
            ready.extend(
                TaskKey(job_id, "verify", n, 0)
                for n in session.scalars(
                    select(TaskRow.node).where(
                        *mine, TaskRow.kind == "verify", TaskRow.state == TaskState.WAITING
                    )
                )
            )
            for task_node in session.scalars(
                select(TaskRow.node).where(
                    *mine, TaskRow.kind == "finalize", TaskRow.state == TaskState.WAITING
                )
            ):
                by_state = counts.get(task_node, {})
                if all(state == TaskState.DONE for state in by_state):
                    ready.append(TaskKey(job_id, "finalize", task_node, 0))
        return ready

    def jobs_with_waiting(self) -> list[str]:
        """Jobs with tasks not yet sent: what the reconciler tops up after a crash."""
        with self._ledger.read_session() as session, session.begin():
            return list(
                session.scalars(
                    select(TaskRow.job_id).where(TaskRow.state == TaskState.WAITING).group_by(TaskRow.job_id)
                )
            )
