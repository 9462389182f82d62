"""What makes two requests share a plan, and a shared plan's stored form."""

from datetime import UTC, datetime, timedelta

from stagegate.ledger.models import JobRow
from stagegate.ledger.plan_shares import SharedPlan, ShareShape, share_key
from stagegate.ledger.staging_steps import request_part
from stagegate.ledger.tasks import BatchRange

BASE = ('{"mode": "replicate", "params": null, "source": "s3://b/ds"}', "v1", 1, 1 << 30, 1000)


def test_identical_requests_share_and_any_difference_does_not() -> None:
    assert share_key(*BASE) == share_key(*BASE)
    for i, other in enumerate(
        ['{"mode": "replicate", "params": "{}", "source": "s3://b/ds"}', "v2", 2, 1 << 20, 10]
    ):
        changed = list(BASE)
        changed[i] = other
        assert share_key(*changed) != share_key(*BASE), f"field {i} must be part of the key"  # type: ignore[arg-type]


def test_the_planned_part_of_a_request_is_all_but_who_asked_and_where_to() -> None:
    now = datetime.now(UTC)

    def row(**changes: object) -> JobRow:
        fields: dict[str, object] = dict(
            id="j1", kind="stage", state="pending", actor="alice", role="job", job_ref="r1",
            source="s3://b/ds", destination="nodes:a", files=0, bytes=0, created_at=now, updated_at=now,
            project="p", mode="replicate", nodes='["a"]', idempotency_key="k", params=None,
        )  # fmt: skip
        fields.update(changes)
        return JobRow(**fields)

    later = now + timedelta(seconds=1)
    same = row(id="j2", actor="bob", role="scientist", job_ref=None, project=None, nodes='["b"]',
               destination="nodes:b", idempotency_key=None, created_at=later)  # fmt: skip
    assert request_part(same) == request_part(row())
    for changes in ({"source": "s3://b/other"}, {"mode": "shard"}, {"params": '{"include": ["*.bin"]}'}):
        assert request_part(row(**changes)) != request_part(row()), changes


def test_a_shared_plan_survives_its_stored_form() -> None:
    shapes = (ShareShape("d1", 2, 20, (BatchRange("a", "b", 2, 20),)), ShareShape("d2", 0, 0, ()))
    plan = SharedPlan("j", "d", 2, 20, "v1", False, ("too secret",), {"highest_label": "internal"}, shapes)
    assert SharedPlan.from_json(plan.to_json()) == plan
