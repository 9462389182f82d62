"""The submissions waiting for their decisions: one read for all of them per interval, each woken
when its staging is decided, each given its last-seen state when its wait runs out."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from stagegate.api.decision_waits import DecisionWaits, still_deciding
from stagegate.ledger import Staging
from stagegate.ledger.staging_views import NodeStatus, StagingProgress

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def staging(job_id: str, state: str, hits: bool = False) -> Staging:
    node = NodeStatus("a", "transferring", None, 0, 1, 0, 1, cache_hit=hits)
    return Staging(
        job_id, state, "s3://b/d", "replicate", None, "u", "scientist", None, NOW, NOW, None,
        StagingProgress(0, 1, 0, 1, None, None), [node],
    )  # fmt: skip


class Ledger:
    """Each read answers with the next scripted states; counts the reads and what they asked."""

    def __init__(self, script: list[dict[str, Staging]]) -> None:
        self.script = script
        self.reads: list[list[str]] = []

    def read(self, ids: Sequence[str]) -> list[Staging]:
        self.reads.append(sorted(ids))
        now = self.script[min(len(self.reads), len(self.script)) - 1]
        return [now[i] for i in ids if i in now]


def test_still_deciding_is_pending_planning_or_only_hits_being_checked() -> None:
    assert still_deciding(staging("x", "pending")) and still_deciding(staging("x", "planning"))
    assert still_deciding(staging("x", "transferring", hits=True))
    assert not still_deciding(staging("x", "transferring", hits=False))  # copying: answer now
    assert not still_deciding(staging("x", "ready")) and not still_deciding(staging("x", "denied"))


def test_many_waiters_share_each_read_and_wake_as_their_staging_is_decided() -> None:
    ids = [f"s{i}" for i in range(50)]
    ledger = Ledger(
        [
            {i: staging(i, "planning") for i in ids},
            {i: staging(i, "ready" if int(i[1:]) % 2 else "transferring", hits=True) for i in ids},
            {i: staging(i, "ready") for i in ids},
        ]
    )
    waits = DecisionWaits(ledger.read, interval=0.001)

    async def all_of_them() -> list[Staging]:
        return await asyncio.gather(*(waits.decision(staging(i, "pending"), 30) for i in ids))

    answers = asyncio.run(all_of_them())

    assert [a.state for a in answers] == ["ready"] * 50
    assert len(ledger.reads) == 3  # one read per interval for all fifty, not fifty
    assert ledger.reads[0] == sorted(ids) and ledger.reads[2] == sorted(i for i in ids if int(i[1:]) % 2 == 0)


def test_a_wait_that_runs_out_answers_the_state_last_read() -> None:
    ledger = Ledger([{"s": staging("s", "transferring", hits=True)}])
    waits = DecisionWaits(ledger.read, interval=0.001)

    answer = asyncio.run(waits.decision(staging("s", "pending"), 0.05))

    assert answer.state == "transferring" and ledger.reads


def test_no_wait_when_decided_or_told_not_to() -> None:
    ledger = Ledger([])
    waits = DecisionWaits(ledger.read, interval=0.001)
    assert asyncio.run(waits.decision(staging("s", "denied"), 10)).state == "denied"
    assert asyncio.run(waits.decision(staging("s", "pending"), 0)).state == "pending"
    assert ledger.reads == []
