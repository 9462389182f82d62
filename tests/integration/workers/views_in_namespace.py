"""Run by test_views.py inside ``unshare --user --map-root-user --mount``: real bind mounts in a
mount namespace of its own, so nothing shows outside the test. Prints one JSON line of results."""

import errno
import json
import os
import sys
from pathlib import Path

from stagegate.transfer.sealed import fingerprint, seal
from stagegate.workers.views import LinuxMounter, NodeViews, View

root = Path(sys.argv[1])
datasets = root / "datasets"
mine, theirs = datasets / ("a" * 64), datasets / ("b" * 64)
for dataset, files in (
    (mine, {"train/x.bin": b"x" * 100, "val/y.bin": b"y"}),
    (theirs, {"secret.csv": b"s"}),
):
    for name, data in files.items():
        (dataset / name).parent.mkdir(parents=True, exist_ok=True)
        (dataset / name).write_bytes(data)
    seal(dataset)
before = fingerprint(mine)
views = NodeViews(root, LinuxMounter())
uid, other_uid = "0b7e3f0c-5d2a-4c1e-9f0a-2b3c4d5e6f70", "1c8f4a1d-6e3b-4d2f-8a1b-3c4d5e6f7081"
out: dict[str, object] = {}

first = views.sync([View(uid, "job-1", mine), View(other_uid, "job-2", theirs)])
view = views.path(uid, "job-1")
out["mounted"] = len(first.mount)
out["pod_sees"] = sorted(str(p.relative_to(root / "views" / uid)) for p in (root / "views" / uid).rglob("*"))
out["content"] = (view / "train/x.bin").read_bytes().decode()
try:
    (view / "new.txt").write_bytes(b"w")
    out["write"] = "allowed"
except OSError as exc:
    out["write"] = errno.errorcode[exc.errno or 0]
try:
    os.chmod(view / "val/y.bin", 0o666)  # even root (in this namespace) cannot change a read-only view
    out["chmod"] = "allowed"
except OSError as exc:
    out["chmod"] = errno.errorcode[exc.errno or 0]
out["fingerprint_kept_by_mount"] = fingerprint(mine) == before
out["again"] = len(views.sync([View(uid, "job-1", mine), View(other_uid, "job-2", theirs)]).mount)
hostile = views.sync(
    [View(uid, "job-1", mine), View(other_uid, "job-2", theirs), View(uid, "job-3", Path("/etc"))]
)
out["outside_root"] = len(hostile.mount) + len(hostile.unmount)  # /etc refused: not a dataset
out["traversal"] = len(
    views.sync([View(uid, "job-1", mine), View(other_uid, "job-2", theirs), View("..", "x", mine)]).mount
)

# A pod's own directory, made by kubelet for its subPathExpr before any view: left alone.
(root / "views" / "2d9a5b2e-7f4c-4e3a-9b2c-4d5e6f708192").mkdir()
# Released: the view goes, and nothing of the dataset with it.
last = views.sync([])
out["unmounted"] = len(last.unmount)
out["left_in_views"] = sorted(str(p) for p in (root / "views").rglob("*"))
out["mounts_left"] = sorted(str(p) for p in LinuxMounter().mounted_under(root / "views"))
out["dataset_intact"] = (mine / "train/x.bin").read_bytes() == b"x" * 100
out["fingerprint_kept"] = fingerprint(mine) == before
print(json.dumps(out))
