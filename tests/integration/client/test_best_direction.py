"""``--best METRIC`` without ``--mode``: the direction comes from the metric's name, or the
command is refused. Before, it silently meant "lowest", so ``--best val_acc`` picked the worst."""

import json
import socket
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, write_tree

pytestmark = pytest.mark.integration


def lightning_run(root: Path) -> Path:
    run = root / "run"
    write_tree(
        run,
        {
            "epoch=1-step=10-val_acc=0.70.ckpt": b"a",
            "epoch=2-step=20-val_acc=0.90.ckpt": b"b",
            "epoch=3-step=30-val_acc=0.80.ckpt": b"c",
            ".classification": b"public\n",
        },
    )
    return run


def egress(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, "egress", *args], capture_output=True, text=True, env=env, timeout=60)


def test_best_accuracy_picks_the_highest(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    run = lightning_run(tmp_path)
    out = str(tmp_path / "out")
    proc = egress(subprocess_env, str(run), "--to", out, "--best", "val_acc", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["selected"] == ["epoch=2-step=20-val_acc=0.90.ckpt"]


def test_a_metric_of_unknown_direction_needs_mode(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    run = lightning_run(tmp_path)
    write_tree(run, {"epoch=4-step=40-score=3.ckpt": b"d"})
    proc = egress(subprocess_env, str(run), "--to", str(tmp_path / "out"), "--best", "score", "--dry-run")
    assert proc.returncode != 0
    assert "--mode min or --mode max" in proc.stderr
    chosen = egress(
        subprocess_env, str(run), "--to", str(tmp_path / "out"), "--best", "score", "--mode", "max",
        "--dry-run", "--json",
    )
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["selected"] == ["epoch=4-step=40-score=3.ckpt"]


def test_the_service_is_not_asked_when_the_direction_is_unknown(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as s:  # a server address where nothing listens: asking it would fail otherwise
        s.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**subprocess_env, "STAGEGATE_TOKEN": "sg_" + "x" * 43}
    proc = egress(
        env, "/runs/alice/r1", "--to", "s3://b/m", "--node", "gpu-1", "--best", "score", "--server", server
    )
    assert proc.returncode == 2, proc.stderr
    assert "--mode min or --mode max" in proc.stderr
