"""A burst of identical requests following one shared plan, in batches: the node worker's real
plan, copy, finalize and verify steps, run in this process on a real ledger (PostgreSQL and
SQLite), a real dataset listed from a local source and written to a node root.

The followers waiting in the queue when a plan is found are admitted in one transaction
(``StagingSteps.follow_all``) and their hits confirmed by one check in one transaction
(``CacheIntegrity.confirm_hits``); each is still checked against its own requester's rights,
decided and audited on its own, and never answered ready from a copy that is quarantined or
no longer matches its fingerprint.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from integration.api.conftest import BROKER_URL
from integration.postgres import fresh_pg_database
from stagegate.confinement import SourceRules
from stagegate.ledger import AuditTrail, Ledger, Nodes, StagingRequests, StagingViews, TaskKey, open_ledger
from stagegate.ledger.models import DatasetLabelCheckRow, PinRow
from stagegate.ledger.tokens import Principal
from stagegate.policies import Policy
from stagegate.queues import Dispatcher, make_celery
from stagegate.requests import StagingRequest
from stagegate.workers.cache_integrity import verify_step
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

ALICE = Principal(user="alice", role="scientist", project=None, token_id="t-alice")
BOB = Principal(user="bob", role="scientist", project=None, token_id="t-bob")
FOLLOWERS = 6  # alice's requests besides the first; more than one batch would need 50


@pytest.fixture(params=("postgresql", "sqlite"))
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
            yield opened
        return
    pg_admin = request.getfixturevalue("pg_admin")
    with fresh_pg_database(pg_admin, migrated=True) as url, open_ledger(url) as opened:
        yield opened


class Scene:
    """Alice's dataset under her home, a node ``a``, the worker's steps and the API's submit.
    The API lets anyone read under every home (its roots are wider); the worker only each
    user's own, so bob's request for alice's data gets through the API and must fail on his
    own rights at the worker."""

    def __init__(self, ledger: Ledger, tmp_path: Path) -> None:
        homes = tmp_path / "homes"
        self.source = homes / "alice" / "ds"
        self.source.mkdir(parents=True)
        (self.source / ".classification").write_text("public\n")
        for i in range(5):
            (self.source / f"part-{i}.bin").write_bytes(bytes([i]) * (1000 + i))
        root = tmp_path / "root"
        settings = WorkerSettings("a", root, 1 << 40, source_rules=SourceRules.parse(f"{homes}/{{user}}"))
        Nodes(ledger).heartbeat("a", str(root), 1 << 40, "a@host:1")
        self.ledger = ledger
        self.ctx = NodeContext(settings, ledger, Policy.default(), Dispatcher(make_celery(BROKER_URL)))
        self.requests = StagingRequests(ledger, 30, SourceRules.parse(f"{homes}/{{user}}:{homes}"))

    def submit(self, who: Principal) -> str:
        staging, _, _ = self.requests.submit(who, StagingRequest(str(self.source), nodes=("a",)))
        return staging.id

    def run_queued(self, job_id: str, kinds: tuple[str, ...] = ("plan", "copy", "finalize", "verify")) -> int:
        """Run the job's queued tasks of ``kinds`` (the messages the steps sent, without a broker)
        until none is left; returns how many ran."""
        steps = {"plan": self.ctx.plan, "copy": self.ctx.copy, "finalize": self.ctx.finalize}
        ran = 0
        while queued := [
            t.key for t in self.ctx.tasks.of_job(job_id) if t.state == "queued" and t.key.kind in kinds
        ]:
            for key in queued:
                if key.kind == "verify":
                    verify_step(self.ctx, key)
                else:
                    steps[key.kind](key)
                ran += 1
        return ran

    def state(self, job_id: str) -> str:
        return StagingViews(self.ledger).view(job_id).state

    def story(self, job_id: str) -> list[str]:
        return [e.action for e in AuditTrail(self.ledger).query(job=job_id)]

    def details(self, job_id: str, action: str) -> dict[str, object]:
        (event,) = [e for e in AuditTrail(self.ledger).query(job=job_id) if e.action == action]
        return dict(event.details)

    def pins_of(self, job_id: str) -> list[str]:
        with self.ledger.read_session() as session, session.begin():
            return list(session.scalars(select(PinRow.node).where(PinRow.job_id == job_id)))

    def cached(self) -> str:
        """The first staging, planned and copied: its dataset ready on node a."""
        first = self.submit(ALICE)
        self.run_queued(first)
        assert self.state(first) == "ready", self.ctx.tasks.of_job(first)
        return first

    def burst(self) -> tuple[str, list[str], str]:
        """Alice's followers and bob's request waiting in the queue, then one more of alice's
        whose plan step finds the fresh plan and takes the others along: (that one, alice's
        waiting ones, bob's)."""
        waiting = [self.submit(ALICE) for _ in range(FOLLOWERS)]
        bobs = self.submit(BOB)
        last = self.submit(ALICE)
        self.ctx.plan(TaskKey(last, "plan", "", 0))
        return last, waiting, bobs


def test_waiting_followers_are_admitted_together_each_audited_and_checked_on_its_own(
    ledger: Ledger, tmp_path: Path
) -> None:
    scene = Scene(ledger, tmp_path)
    first = scene.cached()
    last, waiting, bobs = scene.burst()

    # Taken along by the plan step of the last one: no plan task of theirs left to run.
    for job_id in waiting:
        assert [t.state for t in scene.ctx.tasks.of_job(job_id) if t.key.kind == "plan"] == ["done"]
        assert scene.story(job_id) == ["stage.requested", "policy.allowed"], scene.story(job_id)
        assert scene.details(job_id, "policy.allowed")["plan_of"] == first
        assert scene.pins_of(job_id) == ["a"]
        assert scene.state(job_id) == "transferring"  # a hit, not counted before its node checks it
    # Bob asked for alice's data: the API let it through, his own rights at the worker did not.
    assert scene.state(bobs) == "failed"
    assert "policy.allowed" not in scene.story(bobs) and scene.pins_of(bobs) == []

    # One check on the node answers for every hit of the copy waiting for one.
    assert scene.run_queued(last, kinds=("verify",)) == 1
    for job_id in [last, *waiting]:
        assert scene.state(job_id) == "ready"
        assert scene.story(job_id) == ["stage.requested", "policy.allowed", "stage.completed"]
    assert AuditTrail(ledger).verify().intact


def test_no_follower_is_admitted_onto_a_quarantined_copy(ledger: Ledger, tmp_path: Path) -> None:
    scene = Scene(ledger, tmp_path)
    first = scene.cached()
    with ledger.sessions.begin() as session:
        digest = session.scalar(select(PinRow.digest).where(PinRow.job_id == first))
        session.add(
            DatasetLabelCheckRow(
                node="a",
                digest=digest,
                checked_at=datetime.now(UTC),
                quarantined_at=datetime.now(UTC),
                reason="part-3.bin is internal",
            )
        )
    last, waiting, _ = scene.burst()

    # The batch could not admit them: each was then decided on its own, a clear denial.
    for job_id in [last, *waiting]:
        assert scene.state(job_id) == "denied", scene.story(job_id)
        assert scene.story(job_id) == ["stage.requested", "policy.denied"]
        assert scene.pins_of(job_id) == []


def test_a_copy_changed_on_the_node_answers_no_waiting_hit_ready(ledger: Ledger, tmp_path: Path) -> None:
    scene = Scene(ledger, tmp_path)
    first = scene.cached()
    dataset = Path(str(StagingViews(ledger).view(first).nodes[0].path))
    last, waiting, _ = scene.burst()
    part = dataset / "part-2.bin"
    part.chmod(0o644)
    part.write_bytes(b"not what was copied")  # the fingerprint no longer matches

    scene.run_queued(last, kinds=("verify",))

    for job_id in [last, *waiting]:
        assert scene.state(job_id) != "ready", scene.story(job_id)
        assert "stage.completed" not in scene.story(job_id)
