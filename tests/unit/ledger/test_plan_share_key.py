"""What makes two requests share a plan, and a shared plan's stored form."""

from stagegate.ledger.plan_shares import SharedPlan, ShareShape, share_key
from stagegate.ledger.tasks import BatchRange

BASE = ("s3://b/ds", None, "v1", "replicate", 1, 1 << 30, 1000)


def test_identical_requests_share_and_any_difference_does_not() -> None:
    assert share_key(*BASE) == share_key(*BASE)
    for i, other in enumerate(["s3://b/ds2", '{"include": ["*.bin"]}', "v2", "shard", 2, 1 << 20, 10]):
        changed = list(BASE)
        changed[i] = other
        assert share_key(*changed) != share_key(*BASE), f"field {i} must be part of the key"  # type: ignore[arg-type]


def test_a_shared_plan_survives_its_stored_form() -> None:
    shapes = (ShareShape("d1", 2, 20, (BatchRange("a", "b", 2, 20),)), ShareShape("d2", 0, 0, ()))
    plan = SharedPlan("j", "d", 2, 20, "v1", False, ("too secret",), {"highest_label": "internal"}, shapes)
    assert SharedPlan.from_json(plan.to_json()) == plan
