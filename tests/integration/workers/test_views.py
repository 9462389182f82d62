"""Per-owner views with real bind mounts (in a user and mount namespace of the test's own, so
the machine's mounts are untouched), and the ledger's list of the views a node should show."""

import json
import subprocess
import sys
from pathlib import Path

from integration.ledger.test_pins import OTHER, ready_staging
from integration.workers.test_owner_release import ledger as ledger  # the fixture, found by its name
from stagegate.ledger import Ledger, Nodes, StagingRequests
from stagegate.ledger.owners import OwnedDataset, PinOwners
from stagegate.owners import OwnerRef

UID = "0b7e3f0c-5d2a-4c1e-9f0a-2b3c4d5e6f70"
SCRIPT = Path(__file__).with_name("views_in_namespace.py")


def test_a_view_shows_its_own_dataset_read_only_and_goes_with_the_pin(tmp_path: Path) -> None:
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["mounted"] == 2
    assert out["pod_sees"] == ["job-1", "job-1/train", "job-1/train/x.bin", "job-1/val", "job-1/val/y.bin"], (
        "its own dataset, and no other"
    )
    assert out["content"] == "x" * 100
    assert (out["write"], out["chmod"]) == ("EROFS", "EROFS"), "read-only by the kernel, not by modes"
    assert out["fingerprint_kept_by_mount"] and out["fingerprint_kept"], (
        "the cache's tamper check still holds"
    )
    assert out["again"] == 0, "a second pass mounts nothing twice"
    assert out["outside_root"] == 0 and out["traversal"] == 0
    assert out["unmounted"] == 2 and out["mounts_left"] == []
    assert out["left_in_views"] == [str(tmp_path / "views" / "2d9a5b2e-7f4c-4e3a-9b2c-4d5e6f708192")], (
        "a pending pod's own directory stays"
    )
    assert out["dataset_intact"]


def test_the_ledger_lists_the_views_of_held_ready_owned_stagings_only(ledger: Ledger) -> None:
    owned = ready_staging(ledger, owner=OwnerRef("Pod", "ml", "train-0", UID))
    ready_staging(ledger, digest="1" * 64)  # no owner: no view
    released = ready_staging(ledger, who=OTHER, owner=OwnerRef("Pod", "ml", "other", UID), digest="2" * 64)
    StagingRequests(ledger).release(OTHER, released)
    (node,) = Nodes(ledger).all()
    path = next(d.path for d in node.datasets if d.digest == "e" * 64)
    assert PinOwners(ledger).views_on("a") == [OwnedDataset(UID, owned, path)]
    assert PinOwners(ledger).views_on("b") == []
