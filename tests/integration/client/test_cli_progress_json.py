"""``--json --progress`` as a program reads it: every stdout line is one JSON object (listing,
progress, then the summary last), and a failure is a JSON error line on stdout too, with the
human message on stderr and the same exit code. Run as a real subprocess."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, payload, write_tree

pytestmark = pytest.mark.integration

FILES = {f"part-{i:04d}.bin": payload(str(i), 2000 + i) for i in range(1500)}  # > one listing report


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=120)


def events(stdout: str) -> list[dict[str, Any]]:
    """Every line of stdout, parsed: a line that is not one JSON object fails the test."""
    lines = stdout.splitlines()
    assert lines, "nothing on stdout"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and "event" in e for e in parsed), parsed
    return parsed


def test_a_staging_streams_listing_and_progress_then_the_summary(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    proc = run("stage", str(src), "--to", str(tmp_path / "dst"), "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    got = events(proc.stdout)
    kinds = [e["event"] for e in got]
    assert kinds[-1] == "summary" and kinds.count("summary") == 1
    listing = [e for e in got if e["event"] == "listing"]
    assert listing[0]["objects"] == 1000 and not listing[0]["done"], "planning reports as it lists"
    assert listing[-1] == {"event": "listing", "objects": 1501, "bytes": listing[-1]["bytes"], "done": True}
    progress = [e for e in got if e["event"] == "progress"]
    assert progress, "no progress line"
    assert kinds.index("progress") > kinds.index("listing"), "listing comes first"
    done = [p["bytes_done"] for p in progress]
    assert done == sorted(done), "progress never goes back"
    summary, last = got[-1], progress[-1]
    assert last["files_done"] == last["files_total"] == summary["files"] == 1500
    assert last["bytes_done"] == last["bytes_total"] == summary["bytes"] == sum(map(len, FILES.values()))
    assert summary["throughput_bytes_per_second"] > 0
    assert last["rate_bytes_per_s"] == summary["throughput_bytes_per_second"], "the last line agrees"
    assert sum(p["files_done"] == p["files_total"] for p in progress) == 1, "the last snapshot once"
    assert proc.stderr == "", "with --json nothing is drawn on stderr"


def test_json_alone_prints_the_summary_alone(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"x", ".classification": b"public\n"})
    proc = run("stage", str(src), "--to", str(tmp_path / "dst"), "--json")
    assert proc.returncode == 0, proc.stderr
    (summary,) = events(proc.stdout)
    assert summary["event"] == "summary" and summary["files"] == 1


def test_a_denial_is_a_json_error_with_its_reasons_and_exit_3(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"secret.csv": b"x"})  # no label: unclassified
    proc = run("stage", str(src), "--to", str(tmp_path / "dst"), "--json", "--progress")
    assert proc.returncode == 3, proc.stderr
    got = events(proc.stdout)
    error = got[-1]
    assert error["event"] == "error" and error["exit_code"] == 3
    assert any("secret.csv" in r for r in error["reasons"])
    assert "denied" in proc.stderr and "secret.csv" in proc.stderr, "the human message stays on stderr"
    assert not (tmp_path / "dst").exists()


def test_a_missing_source_is_a_json_error_and_exit_2(tmp_path: Path) -> None:
    proc = run("stage", str(tmp_path / "nothing-here"), "--to", str(tmp_path / "dst"), "--json")
    assert proc.returncode == 2, proc.stderr
    (error,) = events(proc.stdout)
    assert error["event"] == "error" and error["exit_code"] == 2 and error["error"]
    assert "error:" in proc.stderr


def test_the_bar_shows_the_listing_and_ends_on_the_summarys_rate(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    # Bytes: text mode would turn the bar's carriage returns into newlines.
    proc = subprocess.run(
        [STAGEGATE, "stage", str(src), "--to", str(tmp_path / "dst"), "--progress"],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    drawn = proc.stderr.decode().rstrip("\n").split("\r")
    assert any(d.strip().startswith("listed 1501 objects") for d in drawn), drawn[:5]
    final = drawn[-1].split()
    summary = proc.stdout.decode().splitlines()[0]  # "staged 1500 files, 3.6 MB into ... (1.2 MB/s)"
    rate = summary.rsplit("(", 1)[1].rstrip(")").split()  # ["1.2", "MB/s"]
    at = final.index(rate[1])
    assert final[at - 1 : at + 1] == rate, (drawn[-1], summary)
    assert "100.0%" in final


def _run_dir(root: Path, label: bytes | None) -> Path:
    files = {f"checkpoint-{step}/model.bin": payload(str(step), 50_000) for step in (100, 200)}
    if label is not None:
        files[".classification"] = label
    return write_tree(root / "run", files)


def test_an_egress_streams_progress_then_the_summary(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, b"public\n")
    out = tmp_path / "out"
    proc = run("egress", str(run_dir), "--to", str(out), "--latest", "1", "--json", "--progress")
    assert proc.returncode == 0, proc.stderr
    got = events(proc.stdout)
    assert got[-1]["event"] == "summary" and got[-1]["selected"] == ["checkpoint-200"]
    progress = [e for e in got if e["event"] == "progress"]
    assert progress and progress[-1]["bytes_done"] == progress[-1]["bytes_total"] == got[-1]["bytes"]
    assert progress[-1]["rate_bytes_per_s"] == got[-1]["throughput_bytes_per_second"] > 0, "one rate"


def test_a_denied_egress_is_a_json_error_and_exit_3(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, None)  # no label, no lineage: denied
    proc = run("egress", str(run_dir), "--to", str(tmp_path / "out"), "--latest", "1", "--json")
    assert proc.returncode == 3, proc.stderr
    (error,) = events(proc.stdout)
    assert error["event"] == "error" and error["exit_code"] == 3
    assert proc.stderr.strip(), "the human message is on stderr too"
