"""``python -m bench.sim`` end to end on a tiny listing: the real planner, splitter and
admission rule, the model, the table and the plot."""

import json
from pathlib import Path

import pytest

from bench import sim


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[str, list[dict]]:
    out = tmp_path / "etas.json"
    argv = ["--files", "3000", "--total", "3GB", "--nodes", "4", "--cores", "1,16"]
    argv += ["--plot", str(tmp_path / "sim.png"), "--json", str(out), "--work", str(tmp_path / "work.json")]
    assert sim.main([*argv, *more]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_three_modes_from_the_real_planner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    printed, rows = run(tmp_path, capsys)
    assert "planned 3,000 files, 3.0 GB with the real planner" in printed
    assert (tmp_path / "sim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_mode = {(r["mode"], r["cores"]): r for r in rows}
    modes = ("replicate", "shard", "fan-out")
    assert set(by_mode) == {(m, c) for m in modes for c in (1.0, 16.0)}
    total = 3_000_000_000
    # what each mode reads from the source: every node all of it, each node its share, once
    assert by_mode["replicate", 1.0]["source_bytes"] == pytest.approx(4 * total, rel=1e-3)
    assert by_mode["shard", 1.0]["source_bytes"] == pytest.approx(total, rel=1e-3)
    assert by_mode["fan-out", 1.0]["source_bytes"] == pytest.approx(total, rel=1e-3)
    assert by_mode["replicate", 1.0]["gets"] == 4 * 3000
    assert by_mode["shard", 1.0]["gets"] == by_mode["fan-out", 1.0]["gets"] == 3000
    for r in rows:
        assert len(r["etas"]) == 4 and all(e > 0 for e in r["etas"])
        assert r["total_s"] > max(r["etas"])
    # a shard is a quarter of the bytes: faster than a whole copy on the same cores
    assert max(by_mode["shard", 1.0]["etas"]) < max(by_mode["replicate", 1.0]["etas"])
    assert max(by_mode["replicate", 16.0]["etas"]) < max(by_mode["replicate", 1.0]["etas"])


def test_the_planned_work_is_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, first = run(tmp_path, capsys)
    printed, again = run(tmp_path, capsys)
    assert "planned work read from" in printed
    assert again == first


def test_admission_refuses_a_copy_bigger_than_the_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, rows = run(tmp_path, capsys, "--nvme-capacity", "1GB")
    assert {r["mode"]: r["fits"] for r in rows if r["cores"] == 1.0} == {
        "replicate": False,
        "shard": True,  # 750 MB a node
        "fan-out": False,
    }
    assert "admission (replicate): refused: node node-00 cannot hold 2.8 GiB" in printed
