"""The simulator's calibration on a real loopback cluster (three workers, API, redis-server,
PostgreSQL, moto): a capped shard staging measured, and the model's prediction of it from the
real planner over the same listing. No timing is asserted: only that both sides ran and the
model's arithmetic holds."""

from pathlib import Path

import boto3
import pytest

from bench.burst import _boto_credentials, _put_dataset
from bench.moto_seeded import Seed
from bench.s3server import S3Server
from bench.sim_calibrate import Case, measure, predict, table

pytestmark = pytest.mark.integration


def test_a_capped_shard_staging_measured_and_predicted(tmp_path: Path) -> None:
    with S3Server(tmp_path / "moto.log") as server:
        s3 = boto3.client("s3", endpoint_url=server.url, **_boto_credentials())
        for name, objects, size in (("warm", 1, 4096), ("tiny", 1, 4096), ("unit", 12, 256 << 10)):
            _put_dataset(s3, Seed(f"cal-{name}", objects, size))
        case = Case("unit", "shard", 3, "256KiB")
        measured = measure(case, server, timeout=300)
        predicted = predict(case, server.url, measured["fixed_s"], measured["server"])
    assert measured["wall_s"] > 0 and measured["fixed_s"] > 0
    probe = measured["server"]  # the server's CPU counters moved while it was asked
    assert 0 < probe.share <= 1 and probe.ms_per_get > 0 and probe.s_per_gib >= 0
    # the real splitter gives each of the three nodes 4 of the 12 objects, 1 MiB in one batch, at
    # 256 KiB/s: the batch's limiter lets its first second (256 KiB) through at once, the other
    # 768 KiB wait for the cap, 3 s, whatever else binds
    assert predicted["copy_s"] >= 3.0
    assert predicted["predicted_s"] == pytest.approx(
        predicted["fixed_s"] + predicted["plan_s"] + predicted["copy_s"]
    )


def test_a_fan_out_staging_measured_and_predicted(tmp_path: Path) -> None:
    """Three workers serving peers (bench.fanout's setup): the first reads the source, the
    others copy from it; the model's prediction of it, and the report's row."""
    with S3Server(tmp_path / "moto.log") as server:
        s3 = boto3.client("s3", endpoint_url=server.url, **_boto_credentials())
        for name, objects, size in (("warm", 1, 4096), ("tiny", 1, 4096), ("unit", 12, 256 << 10)):
            _put_dataset(s3, Seed(f"cal-{name}", objects, size))
        case = Case("unit", "fan-out", 3, "1MiB", 1 << 20)
        measured = measure(case, server, timeout=300, keep=tmp_path / "logs")
        predicted = predict(case, server.url, measured["fixed_s"], measured["server"])
    assert measured["wall_s"] > 0 and set(measured["worker_cpu_s"]) == {"n0", "n1", "n2"}
    assert list((tmp_path / "logs").glob("worker-*.log"))
    # only n0 reads the source (3 MiB in 1 MiB batches at 1 MiB/s: each batch within its
    # limiter's one second of burst); the others follow it, a batch behind
    assert predicted["copy_s"] > 0 and predicted["binds"].startswith("lead n0")
    row = {
        "case": case.name,
        "node_bytes": "3.1 MB",
        "walls": [measured["wall_s"]],
        "measured_s": measured["wall_s"],
        "load": measured["load"],
        "prediction": predicted,
        "error": predicted["predicted_s"] / measured["wall_s"] - 1,
    }
    lines = table([row]).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| unit fan-out x3 1MiB 1.0 MB batches |")
    assert lines[2].count("|") == lines[0].count("|")
