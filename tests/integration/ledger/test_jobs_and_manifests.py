"""Jobs and their manifests on each backend."""

import pytest

from stagegate.errors import ExistsError, InvalidInputError, NotFoundError
from stagegate.ledger import KEEP, CopiedEntry, Jobs, Ledger, ManifestEntry, Manifests


def _job(ledger: Ledger, **overrides: object) -> str:
    fields: dict[str, object] = {
        "kind": "stage", "actor": "alice", "role": "operator",
        "source": "s3://datasets/imagenet/", "destination": "/nvme/imagenet",
    }  # fmt: skip
    fields.update(overrides)
    return Jobs(ledger).create(**fields).id  # type: ignore[arg-type]


def test_create_get_update_find(ledger: Ledger) -> None:
    jobs = Jobs(ledger)
    created = jobs.create(
        kind="egress", actor="bob", role="researcher", job_ref="ckpt-7",
        source="/nvme/ckpt", destination="https://u:pw@store/ckpt?token=abc",
    )  # fmt: skip
    assert created.state == "queued" and created.files == 0 and created.error is None
    assert created.destination == "https://store/ckpt"
    assert created.created_at.tzinfo is not None
    assert jobs.get(created.id) == created

    failed = jobs.update(created.id, state="failed", files=3, bytes=1 << 40, error="disk full")
    assert (failed.state, failed.files, failed.bytes, failed.error) == ("failed", 3, 1 << 40, "disk full")
    assert failed.updated_at >= created.updated_at and failed.created_at == created.created_at
    retried = jobs.update(created.id, state="running", error=None, manifest_digest=KEEP)
    assert (retried.state, retried.error, retried.files) == ("running", None, 3)
    assert jobs.get(created.id) == retried
    assert [j.id for j in jobs.find("ckpt-7")] == [created.id]
    assert jobs.find("nothing") == []


def test_job_errors(ledger: Ledger) -> None:
    jobs = Jobs(ledger)
    with pytest.raises(InvalidInputError):
        _job(ledger, kind="teleport")
    with pytest.raises(NotFoundError):
        jobs.get("no-such-job")
    with pytest.raises(NotFoundError):
        jobs.update("no-such-job", state="done")
    job_id = _job(ledger)
    with pytest.raises(ExistsError):
        _job(ledger, job_id=job_id)


def test_manifest_in_chunks_comes_back_in_code_point_order(ledger: Ledger) -> None:
    job_id = _job(ledger)
    manifests = Manifests(ledger)
    # Mixed case, punctuation and non-ASCII: a locale collation would order these differently.
    keys = ["b", "B", "a/b", "a-b", "a_b", "A", "é", "z", "Ω", "a b", "a.b", "_", "0"] + [
        f"dir/{i:05d}.bin" for i in range(1234)
    ]
    entries = (ManifestEntry(key=k, size=i, revision=f"etag-{i}", label="public") for i, k in enumerate(keys))
    assert manifests.add(job_id, entries, chunk_size=100) == len(keys)
    assert manifests.count(job_id) == len(keys)
    read = list(manifests.entries(job_id, page_size=97))
    assert [e.key for e in read] == sorted(keys)
    assert all(e.blake3 is None and e.verification is None for e in read)
    by_key = {e.key: e for e in read}
    assert by_key["é"].size == keys.index("é") and by_key["é"].revision == f"etag-{keys.index('é')}"
    assert [e.key for e in manifests.entries(job_id, after="dir/01230.bin")] == [
        k for k in sorted(keys) if k > "dir/01230.bin"
    ]


def test_recording_copies(ledger: Ledger) -> None:
    job_id = _job(ledger)
    manifests = Manifests(ledger)
    manifests.add(job_id, (ManifestEntry(key=f"k{i:04d}", size=i) for i in range(250)))
    copies = (
        CopiedEntry(key=f"k{i:04d}", blake3=f"{i:064x}", verification="local") for i in range(0, 250, 2)
    )
    assert manifests.record_copies(job_id, copies, chunk_size=40) == 125
    for entry in manifests.entries(job_id):
        index = int(entry.key[1:])
        if index % 2 == 0:
            assert (entry.blake3, entry.verification) == (f"{index:064x}", "local")
        else:
            assert entry.blake3 is None
    with pytest.raises(NotFoundError):
        manifests.record_copies(job_id, [CopiedEntry(key="absent", blake3="0" * 64, verification="source")])


def test_manifest_errors(ledger: Ledger) -> None:
    manifests = Manifests(ledger)
    with pytest.raises(NotFoundError):
        manifests.add("no-such-job", [ManifestEntry(key="a", size=1)])
    job_id = _job(ledger)
    manifests.add(job_id, [ManifestEntry(key="a", size=1)])
    with pytest.raises(ExistsError):
        manifests.add(job_id, [ManifestEntry(key="a", size=2)])
    assert [e.size for e in manifests.entries(job_id)] == [1]


def test_a_large_manifest_streams(ledger: Ledger) -> None:
    job_id = _job(ledger)
    manifests = Manifests(ledger)
    count = 30_000
    assert manifests.add(job_id, (ManifestEntry(key=f"f/{i:08d}", size=i) for i in range(count))) == count
    total = 0
    for n, entry in enumerate(manifests.entries(job_id)):
        assert entry.size == n
        total += 1
    assert total == count
