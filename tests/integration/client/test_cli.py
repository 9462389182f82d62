"""The ``stagegate`` command, run as a real subprocess: summaries, exit codes, errors."""

import json
import subprocess

import pytest

from integration.helpers import (
    STAGEGATE,
    assert_staged,
    data_files,
    is_ready,
    moto_key,
    payload,
    put_objects,
    write_tree,
)

pytestmark = pytest.mark.integration

SMALL = ["--part-size", "1MiB", "--multipart-threshold", "2MiB", "--no-progress"]
FILES = {
    "x.txt": b"ex",
    "dir/y.bin": payload("y", 10_000),
    "dir/big.bin": payload("big", (2 << 20) + 5),
    "empty": b"",
}
# The shipped policy stages only public data: every dataset here is labelled public by a root
# label file, as a user would label it. Label files are read, not staged: FILES stays the
# expected content of the destination.
PUBLIC_LABEL = {".classification": b"public\n"}


def public(files: dict[str, bytes], prefix: str = "") -> dict[str, bytes]:
    """``files`` (keys under ``prefix``) plus a root ``.classification`` file saying public."""
    return {f"{prefix}{k}": v for k, v in {**files, **PUBLIC_LABEL}.items()}


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _error_line(stderr: str, kind: str = "error:") -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if kind in line]
    assert lines, f"no {kind!r} line on stderr: {stderr!r}"
    return lines[0]


def test_help_exits_0():
    proc = run("stage", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--to" in proc.stdout
    assert "SOURCE" in proc.stdout


def test_json_summary_for_a_local_source(tmp_path):
    src = write_tree(tmp_path / "src", public(FILES))
    dest = tmp_path / "dest"
    proc = run("stage", str(src), "--to", str(dest), "--json", "--concurrency", "4", *SMALL)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["files"] == len(FILES)
    assert summary["bytes"] == sum(map(len, FILES.values()))
    assert (summary["files_copied"], summary["files_skipped"]) == (len(FILES), 0)
    assert (summary["verified_source"], summary["verified_local"]) == (0, len(FILES))
    assert summary["destination"] == str(dest)
    assert len(summary["digest"]) == 64
    assert summary["throughput_bytes_per_second"] >= 0
    assert_staged(dest, FILES)

    again = run("stage", src.as_uri(), "--to", str(dest), "--json", *SMALL)
    assert again.returncode == 0, again.stderr
    summary2 = json.loads(again.stdout)
    assert (summary2["files_copied"], summary2["files_skipped"]) == (0, len(FILES))
    assert summary2["digest"] == summary["digest"]  # another spelling of the same dataset
    assert_staged(dest, FILES)


def test_json_summary_for_an_s3_source(s3_client, bucket, subprocess_env, tmp_path):
    put_objects(s3_client, bucket, public(FILES, "ds/"))
    dest = tmp_path / "dest"
    proc = run(
        "stage",
        f"s3://{bucket}/ds",
        "--to",
        str(dest),
        "--json",
        "--durability",
        "file",
        *SMALL,
        env=subprocess_env,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["files"], summary["verified_source"], summary["verified_local"]) == (
        len(FILES),
        len(FILES),
        0,
    )
    assert_staged(dest, FILES)


def test_human_summary(tmp_path):
    src = write_tree(tmp_path / "src", public(FILES))
    proc = run("stage", str(src), "--to", str(tmp_path / "dest"), *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert f"staged {len(FILES)} files" in proc.stdout
    assert "  digest " in proc.stdout
    assert f"verified: 0 by the source's checksum, {len(FILES)} hashed here" in proc.stdout
    # The lines that name no path fit an 80-column terminal, as the bar does.
    pathless = [line for line in proc.stdout.splitlines() if str(tmp_path) not in line]
    assert pathless and all(len(line) <= 80 for line in pathless), pathless


def test_missing_local_source_exits_2(tmp_path):
    dest = tmp_path / "dest"
    proc = run("stage", str(tmp_path / "no-such-dir"), "--to", str(dest), *SMALL)
    assert proc.returncode == 2
    assert "no-such-dir" in _error_line(proc.stderr)
    assert not is_ready(dest)


def test_missing_s3_source_exits_2(s3_client, bucket, subprocess_env, tmp_path):
    for url in (f"s3://{bucket}/nothing-here", "s3://sg-bucket-that-does-not-exist/x"):
        proc = run("stage", url, "--to", str(tmp_path / "dest"), *SMALL, env=subprocess_env)
        assert proc.returncode == 2, proc.stderr
        _error_line(proc.stderr)


def test_hostile_key_dataset_exits_2(s3_client, bucket, subprocess_env, tmp_path):
    put_objects(s3_client, bucket, {"ds/ok": b"fine", "ds/../escape": b"evil"})
    dest = tmp_path / "sub" / "dest"
    proc = run("stage", f"s3://{bucket}/ds", "--to", str(dest), *SMALL, env=subprocess_env)
    assert proc.returncode == 2, proc.stderr
    assert "../escape" in proc.stderr
    _error_line(proc.stderr)
    assert data_files(dest) == {}
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_bad_size_option_exits_2(tmp_path):
    src = write_tree(tmp_path / "src", {"a": b"a"})
    proc = run("stage", str(src), "--to", str(tmp_path / "dest"), "--part-size", "banana")
    assert proc.returncode == 2
    assert "banana" in proc.stderr


def test_corrupted_source_exits_1(s3_client, bucket, subprocess_env, tmp_path):
    put_objects(s3_client, bucket, public({"victim": payload("v", 5000)}, "ds/"))
    stored = moto_key(bucket, "ds/victim")
    stored.value = payload("w", 5000)  # the published checksum and ETag stay the old ones
    dest = tmp_path / "dest"
    proc = run("stage", f"s3://{bucket}/ds", "--to", str(dest), *SMALL, env=subprocess_env)
    assert proc.returncode == 1, proc.stderr
    assert "victim" in _error_line(proc.stderr, "failed:")
    assert not is_ready(dest)
    assert data_files(dest) == {}
