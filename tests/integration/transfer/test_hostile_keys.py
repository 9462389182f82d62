"""Keys that would escape the destination, or cannot be a safe path, are refused before
anything is written: the plan is rejected and names them."""

import pytest

from integration.helpers import put_objects, small_config, snapshot
from stagegate.transfer import open_source, stage
from stagegate.transfer.errors import PlanRejectedError
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

# S3 keys may hold all of these; each is put under the dataset prefix "ds/".
HOSTILE = {
    "dotdot": ["../escape"],
    "dotdot-inside": ["a/../../escape"],
    "absolute": ["/abs"],  # the S3 key is "ds//abs": an empty segment after the prefix
    "empty-segment": ["a//b"],
    "nul": ["nul\x00"],  # moto accepts NUL in a key (checked below), so it is kept
    "backslash": ["back\\slash"],
    "state-dir": [".stagegate/x"],
    "dot": ["./x"],
    "unicode-collision": ["caf\u00e9", "cafe\u0301"],  # the NFD form lists first
    # U+212B ANGSTROM SIGN normalises to U+00C5 but lists after it: found by a second pass
    "unicode-collision-later": ["\u00c5ngstr\u00f6m", "\u212bngstr\u00f6m"],
}


@pytest.mark.parametrize("keys", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_key_is_rejected_and_nothing_is_written(s3_client, bucket, tmp_path, keys):
    benign = {"ok/a.txt": b"fine", "ok/b.txt": b"also fine", "zzz": b"last"}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in benign.items()})
    put_objects(s3_client, bucket, {f"ds/{k}": b"hostile payload" for k in keys})
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"ds/{k}" for k in keys} <= listed, "the server did not keep the key as given"

    # Put the destination two levels down so '../escape' and 'a/../../escape' would land
    # inside tmp_path, where the snapshot sees them.
    dest = tmp_path / "outer" / "dest"
    dest.parent.mkdir()
    (tmp_path / "bystander.txt").write_bytes(b"untouched")
    before = snapshot(tmp_path)

    with pytest.raises(PlanRejectedError) as info:
        stage(open_source(f"s3://{bucket}/ds"), dest, small_config())

    message = str(info.value)
    assert info.value.count >= 1
    assert any(repr(k) in message for k in keys), message
    for key in benign:
        assert repr(key) not in message, f"benign key {key!r} was reported unsafe"

    after = snapshot(tmp_path)
    new = {p: v for p, v in after.items() if p not in before}
    changed = {p for p in before if before[p] != after.get(p)}
    assert changed == set(), f"paths outside the destination changed: {changed}"
    outside = [p for p in new if p != "outer/dest" and not p.startswith("outer/dest/")]
    assert outside == [], f"written outside the destination: {outside}"
    inside = [p for p in new if p.startswith("outer/dest/")]
    assert inside == [], f"written into the destination: {inside}"
    assert not (state_dir_of(dest) / "READY").exists()


def test_rejection_names_every_unsafe_key(s3_client, bucket, tmp_path):
    keys = ["../one", "two//x", "three\\x", "/four"]
    put_objects(s3_client, bucket, {f"ds/{k}": b"x" for k in keys} | {"ds/fine": b"y"})
    with pytest.raises(PlanRejectedError) as info:
        stage(open_source(f"s3://{bucket}/ds"), tmp_path / "dest", small_config())
    assert info.value.count == len(keys)
    for key in keys:
        assert repr(key) in str(info.value)
