"""A destination that runs out of room mid-staging: the run fails cleanly (exit 1), no partial
file is visible, the dataset is not ready, and the audit trail records the failure.

The file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes the kernel refuse writes past
a size exactly as a full disk refuses them, without a privileged mount of a tiny filesystem.
"""

import json
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, data_files, is_ready, payload, temp_files, write_tree

pytestmark = pytest.mark.integration

LIMIT = 1 << 20  # no file of the run, the ledger's included, may grow past 1 MiB


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_out_of_room_fails_cleanly_and_is_audited(tmp_path: Path) -> None:
    files = {"a.bin": payload("a", 1000), "b/too-big.bin": payload("big", 2 * LIMIT), "c.txt": b"c"}
    source = write_tree(tmp_path / "src", {**files, ".classification": b"public\n"})
    dest = tmp_path / "dest"

    staged = subprocess.run(
        [STAGEGATE, "stage", str(source), "--to", str(dest), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
    )

    assert staged.returncode == 1, staged.stderr
    assert "stagegate: failed: b/too-big.bin: cannot write it under" in staged.stderr  # names the file
    assert "Traceback" not in staged.stderr
    assert not is_ready(dest)
    assert temp_files(dest) == []
    landed = data_files(dest)
    assert "b/too-big.bin" not in landed
    assert all(landed[key] == files[key] for key in landed)  # what is visible is whole

    audit = subprocess.run(
        [STAGEGATE, "audit", "query", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert actions == ["stage.requested", "policy.allowed", "stage.failed"]
