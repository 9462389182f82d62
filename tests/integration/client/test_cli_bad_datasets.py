"""Datasets that cannot be staged as they are: the CLI exits 2 (bad input) before a byte moves,
naming what is wrong, whatever the source."""

import pytest

from integration.client.test_cli import SMALL, _error_line, public, run
from integration.helpers import data_files, is_ready, put_objects, write_tree

pytestmark = pytest.mark.integration


def test_key_under_a_file_key_exits_2_at_planning(s3_client, bucket, subprocess_env, tmp_path):
    # S3 holds the object 'a' and the object 'a/b'; a directory cannot: 'a' is a file or a
    # directory. Found while planning, so nothing is written, not even 'aa', listed first.
    put_objects(s3_client, bucket, public({"a": b"file", "a-c": b"x", "a/b": b"under", "aa": b"y"}, "ds/"))
    dest = tmp_path / "dest"

    proc = run("stage", f"s3://{bucket}/ds", "--to", str(dest), *SMALL, env=subprocess_env)

    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc.stderr)
    assert "'a/b'" in proc.stderr and "'a' is a file" in proc.stderr, line
    assert not is_ready(dest)
    assert not dest.exists() or data_files(dest) == {}


@pytest.mark.parametrize("where", ["posix", "s3"])
def test_oversized_label_file_exits_2(s3_client, bucket, subprocess_env, tmp_path, where):
    files = public({"x.txt": b"ex", "sub/.classification": b"public" + b" " * 5000})
    if where == "posix":
        url = str(write_tree(tmp_path / "src", files))
    else:
        put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
        url = f"s3://{bucket}/ds"
    dest = tmp_path / "dest"

    proc = run("stage", url, "--to", str(dest), *SMALL, env=subprocess_env)

    assert proc.returncode == 2, proc.stderr
    assert "sub/.classification: 5006 bytes" in _error_line(proc.stderr)
    assert not is_ready(dest)
    assert not dest.exists() or data_files(dest) == {}
