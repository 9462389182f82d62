"""``stagegate.stage`` and ``stagegate.egress`` as a training script calls them: real files,
the loopback S3 server, the embedded SQLite ledger; the same outcomes and messages as the CLI."""

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stagegate
from integration.helpers import STAGEGATE, assert_staged, is_ready, payload, put_objects, write_tree
from stagegate.ledger import AuditTrail, open_ledger

pytestmark = pytest.mark.integration


def files(n: int, size: int = 20_000) -> dict[str, bytes]:
    return {f"shard-{i:03d}.bin": payload(f"f{i}", size) for i in range(n)}


def actions(job_ref: str | None = None) -> list[str]:
    """The embedded ledger's audit actions (of ``job_ref``'s stagings; None: all of them)."""
    ledger = open_ledger()
    try:
        return [e.action for e in AuditTrail(ledger).query() if job_ref in (None, e.job_ref)]
    finally:
        ledger.close()


def test_stage_a_posix_directory_then_again(tmp_path: Path) -> None:
    data = files(40)
    source = write_tree(tmp_path / "src", {**data, ".classification": b"public\n"})
    seen: list[stagegate.Progress] = []

    staged = stagegate.stage(
        str(source), to=tmp_path / "dest", job="run-1", progress=seen.append, concurrency=4
    )

    assert isinstance(staged, stagegate.Staged)
    assert_staged(tmp_path / "dest", data)
    assert (staged.files, staged.bytes) == (40, sum(len(v) for v in data.values()))
    assert (staged.files_copied, staged.files_kept) == (40, 0)
    assert staged.verified_source + staged.verified_local == 40
    assert staged.path == tmp_path / "dest" and (staged.state_dir / "READY").is_file()
    assert (staged.state_dir / "manifest.jsonl").is_file() and len(staged.digest) == 64
    # Progress: snapshots in order, never back, ending with everything done.
    pairs = [(p.files_done, p.bytes_done) for p in seen]
    assert len(pairs) > 1
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(pairs))
    assert pairs[-1] == (40, staged.bytes)
    assert actions("run-1") == ["stage.requested", "policy.allowed", "stage.completed"]

    again = stagegate.stage(str(source), to=tmp_path / "dest", job="run-1")
    assert (again.files_copied, again.files_kept, again.digest) == (0, 40, staged.digest)


def test_the_cli_reports_what_the_api_returns(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {**files(3), ".classification": b"public\n"})
    staged = stagegate.stage(str(source), to=tmp_path / "dest")
    out = subprocess.run(
        [STAGEGATE, "stage", str(source), "--to", str(tmp_path / "dest"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(out.stdout)
    assert summary["digest"] == staged.digest and summary["files_skipped"] == 3
    assert Path(summary["state_dir"]) == staged.state_dir


def test_stage_an_s3_prefix(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    data = files(12, 50_000)
    put_objects(
        s3_client, bucket, {**{f"ds/{k}": v for k, v in data.items()}, "ds/.classification": b"public\n"}
    )

    staged = stagegate.stage(f"s3://{bucket}/ds", to=str(tmp_path / "ds"))

    assert_staged(tmp_path / "ds", data)
    assert staged.source == f"s3://{bucket}/ds" and staged.files == 12


def test_a_denied_staging_raises_the_cli_message_and_leaves_nothing(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {**files(3), ".classification": b"confidential\n"})
    dest = tmp_path / "dest"

    with pytest.raises(stagegate.PolicyDeniedError) as info:
        stagegate.stage(str(source), to=dest, job="run-denied")

    assert isinstance(info.value, PermissionError)  # catchable by meaning too
    assert "confidential" in str(info.value)
    assert not is_ready(dest) and (not dest.exists() or list(dest.iterdir()) == [])
    assert actions("run-denied") == ["stage.requested", "policy.denied"]
    cli = subprocess.run([STAGEGATE, "stage", str(source), "--to", str(dest)], capture_output=True, text=True)
    assert cli.returncode == 3
    assert cli.stderr == f"stagegate: {info.value}\n"


def test_bad_input_raises_before_anything_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(stagegate.InvalidInputError, match="empty"):
        stagegate.stage(str(tmp_path), to="  ")
    with pytest.raises(stagegate.InvalidInputError, match="concurrency must be positive"):
        stagegate.stage(str(tmp_path), to=tmp_path / "d", concurrency=0)
    with pytest.raises(stagegate.InvalidInputError, match="durability"):
        stagegate.stage(str(tmp_path), to=tmp_path / "d", durability="sometimes")
    with pytest.raises(stagegate.InvalidInputError, match="credentials"):
        stagegate.stage("s3://KEY:SECRET@bucket/x", to=tmp_path / "d")
    assert actions() == [] and not (tmp_path / "d").exists()


def test_a_missing_source_is_not_found_as_in_the_cli(tmp_path: Path) -> None:
    with pytest.raises(stagegate.NotFoundError) as info:
        stagegate.stage(str(tmp_path / "nope"), to=tmp_path / "d")
    cli = subprocess.run(
        [STAGEGATE, "stage", str(tmp_path / "nope"), "--to", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2 and cli.stderr == f"stagegate: error: {info.value}\n"


def make_run(root: Path, label: str = "public") -> Path:
    run = root / "run"
    for step in (100, 200, 300):
        write_tree(
            run,
            {
                f"checkpoint-{step}/model.bin": payload(f"m{step}", 40_000 + step),
                f"checkpoint-{step}/trainer_state.json": json.dumps({"global_step": step}).encode(),
                f"checkpoint-{step}/.classification": f"{label}\n".encode(),
            },
        )
    return run


def test_egress_the_latest_checkpoint(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    seen: list[stagegate.Progress] = []

    out = stagegate.egress(
        run, to=str(tmp_path / "out"), latest=1, delete_unselected=True, progress=seen.append
    )

    assert isinstance(out, stagegate.Egressed)
    assert out.selected == ("checkpoint-300",) and out.labels == {"checkpoint-300": "public"}
    assert (tmp_path / "out" / "checkpoint-300" / "model.bin").read_bytes() == payload("m300", 40_300)
    assert out.files == 3 and out.bytes == sum(
        p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()
    )
    assert sorted(name for name, _ in out.deleted) == ["checkpoint-100", "checkpoint-200"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-300"]
    assert seen and (seen[-1].files_done, seen[-1].bytes_done) == (3, out.bytes)


def test_a_denied_egress_moves_and_deletes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path, label="confidential")
    with pytest.raises(stagegate.PolicyDeniedError, match="confidential"):
        stagegate.egress(run, to=str(tmp_path / "out"), latest=1, delete_unselected=True)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]


def test_egress_refuses_a_mode_without_best(tmp_path: Path) -> None:
    with pytest.raises(stagegate.InvalidInputError, match="best"):
        stagegate.egress(make_run(tmp_path), to=str(tmp_path / "out"), mode="max")


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "train_with_api.py"


def test_the_example_script_stages_the_example_dataset_and_trains(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--to", str(tmp_path / "train")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    shipped = sum(  # the label file is read, not staged
        p.stat().st_size
        for p in EXAMPLE.with_name("dataset").rglob("*")
        if p.is_file() and p.name != ".classification"
    )
    assert f"trained on {shipped} bytes" in run.stdout
    assert is_ready(tmp_path / "train")


def test_the_example_script_exits_3_when_denied(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.bin": b"a", ".classification": b"restricted\n"})
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), str(source), "--to", str(tmp_path / "train")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3 and "restricted" in run.stderr


def test_egress_refuses_bad_tunables_before_anything_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(stagegate.InvalidInputError, match="concurrency must be positive"):
        stagegate.egress(make_run(tmp_path), to=str(tmp_path / "out"), latest=1, concurrency=0)
    assert actions() == [] and not (tmp_path / "out").exists()


def test_stage_subsets_with_include_or_exclude(tmp_path: Path) -> None:
    data = {
        "train/a.bin": payload("a", 9_000),
        "train/b.tmp": payload("b", 9_000),
        "val/c.bin": payload("c", 9_000),
    }
    source = write_tree(tmp_path / "src", {**data, ".classification": b"public\n"})

    train = stagegate.stage(str(source), to=tmp_path / "train", include=["/train/**"])
    no_tmp = stagegate.stage(str(source), to=tmp_path / "no-tmp", exclude=["*.tmp"])
    whole = stagegate.stage(str(source), to=tmp_path / "whole")

    assert_staged(tmp_path / "train", {k: v for k, v in data.items() if k.startswith("train/")})
    assert_staged(tmp_path / "no-tmp", {k: v for k, v in data.items() if not k.endswith(".tmp")})
    assert (train.files, no_tmp.files, whole.files) == (2, 2, 3)
    assert len({train.digest, no_tmp.digest, whole.digest}) == 3  # another subset, another dataset
    with pytest.raises(stagegate.InvalidInputError, match=r"\.\."):
        stagegate.stage(str(source), to=tmp_path / "up", include=["../**"])
    assert not (tmp_path / "up").exists()
    with pytest.raises(stagegate.InvalidInputError, match="would change nothing beside --include"):
        stagegate.stage(str(source), to=tmp_path / "mixed", include=["/train/**"], exclude=["*.tmp"])
    assert not (tmp_path / "mixed").exists()


def test_egress_files_of_a_checkpoint_with_include(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    out = stagegate.egress(run, to=str(tmp_path / "out"), latest=1, include=["*.bin"])
    landed = sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()
    )
    assert landed == ["checkpoint-300/model.bin"] and out.files == 1
