"""Splitting a plan across nodes: replicate gives every node the whole plan, shard splits it
by bytes into contiguous key ranges; both batch each share."""

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer import Plan, SourceObject
from stagegate.transfer.manifest import ManifestDigest
from stagegate.workers.portions import shard_of, split_plan


def make_plan(tmp: Path, sizes: list[int]) -> Plan:
    objects = [SourceObject(key=f"k{i:05d}", size=s, revision=f"r{i}") for i, s in enumerate(sizes)]
    path = tmp / "plan.jsonl"
    path.write_text(
        "".join(json.dumps({"key": o.key, "size": o.size, "revision": o.revision}) + "\n" for o in objects)
    )
    digest = ManifestDigest()
    for obj in objects:
        digest.add(obj)
    return Plan("s3://b/p", path, len(objects), sum(sizes), digest.hexdigest(), 0)


def test_replicate_gives_each_node_the_whole_plan_under_the_plan_digest(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, [10] * 7)
    portions = split_plan(plan, ["a", "b"], "replicate", batch_max_bytes=1000, batch_max_files=3)
    assert [p.node for p in portions] == ["a", "b"]
    for portion in portions:
        assert portion.digest == plan.digest
        assert (portion.files, portion.bytes) == (7, 70)
        assert [b.files for b in portion.batches] == [3, 3, 1]
        assert portion.batches[0].key_from == "k00000" and portion.batches[-1].key_to == "k00006"


def test_shard_splits_evenly_by_bytes_into_contiguous_ranges(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, [100, 1, 1, 1, 1, 100, 50, 50])
    a, b = split_plan(plan, ["a", "b"], "shard", batch_max_bytes=1 << 30, batch_max_files=1000)
    assert a.bytes + b.bytes == plan.bytes and a.files + b.files == plan.files
    assert a.batches[-1].key_to < b.batches[0].key_from
    assert abs(a.bytes - b.bytes) <= 100
    assert a.digest != b.digest != plan.digest


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=60), st.integers(1, 6))
def test_every_entry_lands_in_exactly_one_share(sizes: list[int], shares: int) -> None:
    total, position, seen = sum(sizes), 0, []
    for size in sizes:
        seen.append(shard_of(position, size, total, shares))
        position += size
    assert all(0 <= s < shares for s in seen)
    assert seen == sorted(seen), "shares are contiguous ranges"
