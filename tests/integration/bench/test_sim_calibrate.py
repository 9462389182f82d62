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
from bench.sim_calibrate import Case, measure, predict

pytestmark = pytest.mark.integration


def test_a_capped_shard_staging_measured_and_predicted(tmp_path: Path) -> None:
    with S3Server(tmp_path / "moto.log") as server:
        s3 = boto3.client("s3", endpoint_url=server.url, **_boto_credentials())
        for name, objects, size in (("warm", 1, 4096), ("tiny", 1, 4096), ("unit", 12, 256 << 10)):
            _put_dataset(s3, Seed(f"cal-{name}", objects, size))
        case = Case("unit", "shard", 3, "256KiB")
        measured = measure(case, server.url, timeout=300)
        predicted = predict(case, server.url, measured["fixed_s"], measured["cpu_share"])
    assert measured["wall_s"] > 0 and measured["fixed_s"] > 0
    assert 0 < measured["cpu_share"] <= 1
    # the real splitter gives each of the three nodes 4 of the 12 objects, 1 MiB, at 256 KiB/s:
    # never faster than the cap, whatever else binds
    assert predicted["copy_s"] >= 4.0
    assert predicted["predicted_s"] == pytest.approx(
        predicted["fixed_s"] + predicted["plan_s"] + predicted["copy_s"]
    )
