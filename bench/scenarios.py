"""The scenarios and their data sizes, full and quick."""

from __future__ import annotations

from dataclasses import dataclass

from bench.datasets import Dataset

KiB, MiB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "s3" or "posix": where the source data lives
    dataset: Dataset
    # A run taking longer is killed: generous, but short enough that a hung tool cannot
    # stall the quick benchmark for long.
    timeout_s: float
    # The memory scenario stages once with stagegate only: it measures RSS, not a race.
    stagegate_only: bool = False


def _four(
    big: Dataset, small: Dataset, s3_big: Dataset, s3_small: Dataset, timeout_s: float
) -> list[Scenario]:
    return [
        Scenario("posix-big", "posix", big, timeout_s),
        Scenario("posix-small", "posix", small, timeout_s),
        Scenario("s3-big", "s3", s3_big, timeout_s),
        Scenario("s3-small", "s3", s3_small, timeout_s),
    ]


FULL = _four(
    big=Dataset(4, 512 * MiB, 512 * MiB),
    small=Dataset(20_000, 16 * KiB, 64 * KiB),
    s3_big=Dataset(4, 512 * MiB, 512 * MiB),
    s3_small=Dataset(20_000, 16 * KiB, 64 * KiB),
    timeout_s=600,
)
# Sized so `--quick` fits in 3 minutes on 2 cores, upload to the in-memory server included.
# The S3 sets are smaller because the Python S3 server is the slow side.
QUICK = _four(
    big=Dataset(2, 256 * MiB, 256 * MiB),
    small=Dataset(3_000, 16 * KiB, 64 * KiB),
    s3_big=Dataset(2, 128 * MiB, 128 * MiB),
    s3_small=Dataset(1_000, 16 * KiB, 64 * KiB),
    timeout_s=60,
)
RSS = Scenario("rss-200k", "posix", Dataset(200_000, KiB, KiB), 600, stagegate_only=True)

NAMES = [scenario.name for scenario in FULL] + [RSS.name]


def select(names: list[str], quick: bool) -> list[Scenario]:
    """The named scenarios at the chosen size, in the order given."""
    by_name = {scenario.name: scenario for scenario in (QUICK if quick else FULL)}
    by_name[RSS.name] = RSS
    return [by_name[name] for name in names]
