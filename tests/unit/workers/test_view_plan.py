"""What makes a node's views the wanted ones: pure, on paths."""

from pathlib import Path

from stagegate.workers.views import plan_views

V = Path("/nvme/views")
D = Path("/nvme/datasets")


def test_missing_views_are_mounted_and_others_unmounted_then_removed() -> None:
    wanted = {V / "u1" / "j1": D / "d1", V / "u2" / "j2": D / "d2"}
    present = [V / "u1" / "j1", V / "u1" / "old", V / "u3" / "crashed"]
    mounted = {V / "u1" / "j1", V / "u1" / "old"}
    plan = plan_views(wanted, present, mounted)
    assert plan.mount == ((D / "d2", V / "u2" / "j2"),), "j1 is there already"
    assert plan.unmount == (V / "u1" / "old",)
    assert plan.remove == (V / "u1" / "old", V / "u3" / "crashed"), "a directory a crash left, unmounted"


def test_nothing_wanted_removes_everything_and_nothing_present_mounts_all() -> None:
    present = [V / "u" / "j"]
    assert plan_views({}, present, {V / "u" / "j"}).unmount == (V / "u" / "j",)
    plan = plan_views({V / "u" / "j": D / "d"}, [], set())
    assert (plan.mount, plan.unmount, plan.remove) == (((D / "d", V / "u" / "j"),), (), ())
