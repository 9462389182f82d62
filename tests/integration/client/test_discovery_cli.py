"""``stagegate ls`` and ``du`` as a user runs them (a subprocess), against a real S3 server on
loopback and a local directory: sizes, the label each object would get and where it comes
from, the policy's word, JSON lines that parse, and no answer for the wrong side when a
server is set."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, put_objects, write_tree

pytestmark = pytest.mark.integration


def run(env: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def mixed(s3_client: Any, bucket: str) -> str:
    """``ds/``: public by its root label file, one object raised to confidential by its own tag,
    and one prefix labelled internal by its own label file."""
    put_objects(
        s3_client,
        bucket,
        {
            "ds/.classification": b"public\n",
            "ds/a.txt": b"a" * 10,
            "ds/train/x.bin": b"x" * 1000,
            "ds/train/y.bin": b"y" * 2000,
            "ds/notes/.classification": b"internal\n",
            "ds/notes/n.md": b"n" * 5,
        },
    )
    s3_client.put_object(
        Bucket=bucket, Key="ds/train/secret.bin", Body=b"s" * 300, Tagging="classification=confidential"
    )
    return f"s3://{bucket}/ds"


def test_ls_shows_each_objects_label_its_origin_and_verdict(
    subprocess_env: dict[str, str], mixed: str
) -> None:
    proc = run(subprocess_env, "ls", mixed, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]  # every line parses
    entries = {e["key"]: e for e in lines if e["event"] == "entry"}
    assert set(entries) == {"a.txt", "train/x.bin", "train/y.bin", "train/secret.bin", "notes/n.md"}
    assert entries["a.txt"] == {
        "event": "entry", "key": "a.txt", "size": 10, "label": "public",
        "label_origin": "file:.classification", "allowed": True,
    }  # fmt: skip
    assert entries["train/secret.bin"]["label"] == "confidential"
    assert entries["train/secret.bin"]["label_origin"] == "own"
    assert not entries["train/secret.bin"]["allowed"]
    assert entries["notes/n.md"]["label"] == "internal" and not entries["notes/n.md"]["allowed"]
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["files"] == 5 and summary["bytes"] == 3315
    assert summary["decision"]["allowed"] is False


def test_ls_limit_stops_the_output_not_the_truth(subprocess_env: dict[str, str], mixed: str) -> None:
    proc = run(subprocess_env, "ls", mixed, "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len([line for line in lines if "(file:" in line or "(own)" in line]) == 2
    assert "5 objects, 3.3 kB (showing 2; --limit)" in lines
    assert any(line.startswith("staging: DENIED") for line in lines), "the decision covers every object"
    assert any("train/secret.bin" in line and "confidential" in line for line in lines), "reasons name it"


def test_du_totals_by_label_and_prefix(subprocess_env: dict[str, str], mixed: str) -> None:
    proc = run(subprocess_env, "du", mixed, "--json")
    assert proc.returncode == 0, proc.stderr
    (usage,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (usage["files"], usage["bytes"]) == (5, 3315)
    assert usage["by_label"] == {
        "confidential": {"files": 1, "bytes": 300},
        "internal": {"files": 1, "bytes": 5},
        "public": {"files": 3, "bytes": 3010},
    }
    assert usage["by_prefix"] == {
        "": {"files": 1, "bytes": 10},
        "notes/": {"files": 1, "bytes": 5},
        "train/": {"files": 3, "bytes": 3300},
    }
    assert usage["decision"]["allowed"] is False and usage["decision"]["offending_count"] == 2
    human = run(subprocess_env, "du", mixed)
    assert human.returncode == 0, human.stderr
    assert "5 objects, 3.3 kB in " + mixed in human.stdout
    assert "staging: DENIED" in human.stdout


def test_a_public_local_directory_is_allowed_and_nothing_moves(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a/b.txt": b"hello", ".classification": b"public\n"})
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run(None, "du", str(src))
    assert proc.returncode == 0, proc.stderr
    assert "staging: allowed" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_missing_source_is_an_error_exit_2_as_json_too(tmp_path: Path) -> None:
    proc = run(None, "ls", str(tmp_path / "nothing"), "--json")
    assert proc.returncode == 2
    (error,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert error["event"] == "error" and error["exit_code"] == 2
    assert "error:" in proc.stderr


def test_with_a_server_set_it_does_not_answer_from_here(tmp_path: Path) -> None:
    """Not silently the wrong side: with STAGEGATE_URL set, `ls /etc` is not read with this
    machine's rights in the service's name; --local asks for exactly that."""
    env = {**os.environ, "STAGEGATE_URL": "http://127.0.0.1:9", "STAGEGATE_TOKEN": "x"}
    proc = run(env, "ls", "/etc", "--limit", "1")
    assert proc.returncode == 2
    assert "--local" in proc.stderr
    assert proc.stdout == ""
    src = write_tree(tmp_path / "src", {"f": b"1", ".classification": b"public\n"})
    local = run(env, "du", str(src), "--local")
    assert local.returncode == 0, local.stderr
    assert "1 objects" in local.stdout
