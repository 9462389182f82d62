"""``stagegate stage --include/--exclude`` and labels above the prefix, run as a user runs them
(real subprocesses, embedded mode) on directories and on the loopback S3 server."""

import json
from pathlib import Path

import pytest

from integration.client.test_policy_cli import audit, run
from integration.helpers import assert_staged, payload, put_objects, snapshot, write_tree

pytestmark = pytest.mark.integration

TREE = {
    "train/a.bin": payload("ta", 3000),
    "train/b.bin": payload("tb", 2000),
    "val/a.bin": payload("va", 1000),
    "val/deep/c.tmp": b"scratch",
    "val/deep/c.bin": payload("vc", 500),
}


def stage_json(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = run("stage", *args, "--json", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_include_and_exclude_stage_exactly_the_subset(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**TREE, ".classification": b"public\n"})
    dest = tmp_path / "val-only"

    # Includes are tried first (as in rclone), so beside one an exclude would change nothing:
    # *.tmp under val/ would still be taken. The mix is refused, naming both, and nothing moves.
    mixed = run(
        "stage", str(src), "--to", str(dest), "--include", "/val/**", "--exclude", "*.tmp", "--no-progress"
    )
    assert mixed.returncode == 2, mixed.stderr
    assert "--exclude '*.tmp' would change nothing beside --include '/val/**'" in mixed.stderr
    assert not dest.exists()
    assert audit("--action", "stage.requested") == []

    summary = stage_json(str(src), "--to", str(dest), "--include", "/val/**")
    expected = {k: v for k, v in TREE.items() if k.startswith("val/")}
    assert_staged(dest, expected)
    assert summary["files"] == len(expected)
    assert summary["bytes"] == sum(len(v) for v in expected.values())

    only_excluded = tmp_path / "no-tmp"
    stage_json(str(src), "--to", str(only_excluded), "--exclude", "*.tmp", "--exclude", "/train/")
    assert_staged(only_excluded, {k: v for k, v in expected.items() if not k.endswith(".tmp")})


def test_different_filters_make_different_datasets_and_the_same_filter_the_same(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**TREE, ".classification": b"public\n"})
    whole = stage_json(str(src), "--to", str(tmp_path / "whole"))
    val = stage_json(str(src), "--to", str(tmp_path / "val"), "--include", "val/**")
    val_again = stage_json(str(src), "--to", str(tmp_path / "val2"), "--include", "/val/**")
    train = stage_json(str(src), "--to", str(tmp_path / "train"), "--include", "train/**")

    digests = [whole["digest"], val["digest"], train["digest"]]
    assert len(set(digests)) == 3, digests
    assert val_again["digest"] == val["digest"]  # the same files: the same dataset (a cache hit)


def test_an_exclude_cannot_hide_a_label_file(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**TREE, ".classification": b"confidential\n"})
    dest = tmp_path / "dest"

    for hide in (".classification", "**/.classification", "/.classification"):
        proc = run("stage", str(src), "--to", str(dest), "--exclude", hide, "--no-progress")
        assert proc.returncode == 3, proc.stderr
        assert "is confidential" in proc.stderr
        assert not dest.exists()


def test_a_pattern_that_climbs_is_refused_naming_it(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "data" / "src", {**TREE, ".classification": b"public\n"})
    (tmp_path / "data" / "secret.bin").write_bytes(b"not yours")
    dest = tmp_path / "dest"

    for flag, pattern in (("--include", "../**"), ("--include", "../secret.bin"), ("--exclude", "a/../../x")):
        proc = run("stage", str(src), "--to", str(dest), flag, pattern, "--no-progress")
        assert proc.returncode == 2, proc.stderr
        assert repr(pattern) in proc.stderr and "above the source" in proc.stderr
        assert not dest.exists()
    bad = run("stage", str(src), "--to", str(dest), "--include", "val/{a,b", "--no-progress")
    assert bad.returncode == 2 and "'val/{a,b'" in bad.stderr and "mismatched" in bad.stderr
    empty = run("stage", str(src), "--to", str(dest), "--include", "nothing/**", "--no-progress")
    assert empty.returncode == 2 and "leave none" in empty.stderr
    assert not dest.exists()


def test_a_label_above_the_source_applies_and_policy_check_agrees(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "mini", {f"val/{k}": v for k, v in TREE.items()})
    src = tree / "val"
    dest = tmp_path / "dest"

    denied = run("stage", str(src), "--to", str(dest), "--no-progress")
    assert denied.returncode == 3, denied.stderr
    assert "is unclassified" in denied.stderr
    # The denial says where a label was looked for, and that none was there.
    assert f"{tree}/.classification (none)" in denied.stderr
    assert f"{tmp_path}/.classification (none)" in denied.stderr
    check = run("policy", "check", str(src))
    assert check.returncode == 3 and f"{tree}/.classification (none)" in check.stdout

    (tree / ".classification").write_bytes(b"public\n")
    before = snapshot(tmp_path)
    check = run("policy", "check", str(src), "--include", "train/**")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("allowed: 2 files")
    assert f"{tree}/.classification (public)" in check.stdout
    assert snapshot(tmp_path) == before
    stage_json(str(src), "--to", str(dest), "--include", "train/**")
    assert_staged(dest, {k: v for k, v in TREE.items() if k.startswith("train/")})
    (allowed,) = audit("--action", "policy.allowed")
    assert allowed["details"]["highest_label"] == "public"  # type: ignore[index]
    assert f"{tree}/.classification (public)" in allowed["details"]["label_files_consulted"][0]  # type: ignore[index]


def test_including_a_path_whose_parent_is_labelled_higher_is_denied(tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src", {**TREE, ".classification": b"public\n", "val/.classification": b"pii\n"}
    )
    dest = tmp_path / "dest"

    proc = run("stage", str(src), "--to", str(dest), "--include", "val/deep/**", "--no-progress")

    assert proc.returncode == 3, proc.stderr
    assert "val/deep/c.bin has unknown label 'pii'" in proc.stderr
    assert "in the source: .classification, val/.classification" in proc.stderr
    assert not dest.exists()
    assert run("policy", "check", str(src), "--include", "val/deep/**").returncode == 3
    # Staged alone, the subset still finds val/.classification above it.
    alone = run("stage", str(src / "val" / "deep"), "--to", str(dest), "--no-progress")
    assert alone.returncode == 3 and "has unknown label 'pii'" in alone.stderr
    assert f"{src}/val/.classification (pii)" in alone.stderr


def test_s3_subset_under_a_labelled_prefix(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    put_objects(s3_client, bucket, {f"mini/{k}": v for k, v in TREE.items()})
    dest = tmp_path / "dest"

    denied = run("stage", f"s3://{bucket}/mini/val", "--to", str(dest), "--no-progress", env=subprocess_env)
    assert denied.returncode == 3, denied.stderr
    assert f"s3://{bucket}/mini/.classification (none)" in denied.stderr
    assert f"s3://{bucket}/.classification (none)" in denied.stderr
    assert not dest.exists()

    put_objects(s3_client, bucket, {"mini/.classification": b"public\n"})
    summary = stage_json(
        f"s3://{bucket}/mini/val", "--to", str(dest), "--exclude", "*.tmp", env=subprocess_env
    )
    assert_staged(dest, {"a.bin": TREE["val/a.bin"], "deep/c.bin": TREE["val/deep/c.bin"]})
    assert summary["files"] == 2
    (allowed,) = audit("--action", "policy.allowed", env=subprocess_env)
    assert allowed["details"]["highest_label"] == "public"  # type: ignore[index]

    # A label file above that is a "folder" cannot label anything: refused, not skipped.
    put_objects(s3_client, bucket, {".classification/x": b"public\n"})
    bad = run("stage", f"s3://{bucket}/mini/val", "--to", str(tmp_path / "d2"), env=subprocess_env)
    assert bad.returncode == 2 and f"s3://{bucket}/.classification" in bad.stderr, bad.stderr


def test_s3_label_above_is_the_nearest_and_an_own_file_below_refines(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    put_objects(
        s3_client,
        bucket,
        {
            "a/.classification": b"confidential\n",
            "a/b/.classification": b"public\n",
            "a/b/c/x.bin": b"x",
        },
    )
    # The nearest label file (a/b/.classification) labels a/b/c, as inside a dataset.
    ok = run("policy", "check", f"s3://{bucket}/a/b/c", env=subprocess_env)
    assert ok.returncode == 0, ok.stdout
    assert f"s3://{bucket}/a/b/.classification (public)" in ok.stdout
    denied = run("stage", f"s3://{bucket}/a/b/c/x.bin", "--to", str(tmp_path / "d"), env=subprocess_env)
    assert denied.returncode == 0, denied.stderr  # a single object: its own folder's label counts
    put_objects(s3_client, bucket, {"a/b/.classification": b"restricted\n"})
    refused = run("stage", f"s3://{bucket}/a/b/c", "--to", str(tmp_path / "e"), env=subprocess_env)
    assert refused.returncode == 3 and "x.bin is restricted" in refused.stderr


def test_egress_ships_only_the_files_the_filters_take(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    run_dir = write_tree(
        tmp_path / "run",
        {
            "checkpoint-500/model.safetensors": payload("m5", 4000),
            "checkpoint-500/optimizer.pt": payload("o5", 8000),
            "checkpoint-1000/model.safetensors": payload("m1", 4000),
            "checkpoint-1000/optimizer.pt": payload("o1", 8000),
            "checkpoint-1000/rng_state.pth": b"rng",
            ".classification": b"public\n",
        },
    )
    out = tmp_path / "out"

    proc = run(
        "egress", str(run_dir), "--to", str(out), "--latest", "1",
        "--exclude", "optimizer.pt", "--exclude", "*.pth", "--json", env=subprocess_env,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    shipped = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".stagegate" not in p.parts
    )
    assert shipped == ["checkpoint-1000/model.safetensors"]
    assert (out / "checkpoint-1000" / "model.safetensors").read_bytes() == payload("m1", 4000)
    (requested,) = audit("--action", "egress.requested", env=subprocess_env)
    assert requested["details"]["exclude"] == ["optimizer.pt", "*.pth"]  # type: ignore[index]

    to_s3 = run(
        "egress", str(run_dir), "--to", f"s3://{bucket}/models/r1", "--latest", "1",
        "--include", "*.safetensors", env=subprocess_env,
    )  # fmt: skip
    assert to_s3.returncode == 0, to_s3.stderr
    keys = [
        o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket, Prefix="models/r1/").get("Contents", [])
    ]
    assert keys == ["models/r1/checkpoint-1000/model.safetensors"]

    nothing = run(
        "egress", str(run_dir), "--to", str(tmp_path / "o2"), "--latest", "1", "--include", "none/**"
    )
    assert nothing.returncode == 2 and "leave no file" in nothing.stderr, nothing.stderr
    climbing = run(
        "egress", str(run_dir), "--to", str(tmp_path / "o3"), "--latest", "1", "--include", "../**"
    )
    assert climbing.returncode == 2 and "above the source" in climbing.stderr
