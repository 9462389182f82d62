"""``workers.staging.run_staging`` under the classification policy, on real directories and
on the real (loopback) S3 server, with the real SQLite ledger under $STAGEGATE_HOME.

Every scenario runs on both sources: POSIX labels are the ``user.classification`` xattr and
``.classification`` files; S3 labels are the ``classification`` object tag and objects named
``.classification`` under the prefix.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from integration.helpers import (
    MiB,
    assert_staged,
    blake3_hex,
    data_files,
    is_ready,
    payload,
    snapshot,
)
from stagegate.errors import InvalidInputError
from stagegate.key_filters import KeyFilter
from stagegate.ledger import AuditEvent, AuditTrail, Job, Jobs, ManifestEntry, Manifests, open_ledger
from stagegate.policies import LABEL_FILE_NAME, LABEL_TAG, LABEL_XATTR, Policy, PolicyDeniedError
from stagegate.requests import StagingRequest
from stagegate.transfer import LabelChangedError, Plan, StageResult
from stagegate.workers.staging import (
    Requester,
    StagingOptions,
    check_policy,
    label_resolver,
    planned_source,
    run_staging,
)

pytestmark = pytest.mark.integration

REQUESTER = Requester(actor="alice", role="local")
# Small parts, so the 3 MiB file goes through the ranged (multipart) path on S3.
OPTIONS = StagingOptions(concurrency=4, part_size=1 * MiB, multipart_threshold=2 * MiB)
FILES = {
    "a.txt": b"alpha",
    "sub/b.bin": payload("b", 10_000),
    "sub/deep/c.bin": payload("c", 3 * MiB + 7),
}
CONFIDENTIAL_POLICY = b"version: 1\nstaging: confidential\n"


class Dataset(Protocol):
    kind: str
    url: str

    def put(self, key: str, data: bytes, label: str | None = None) -> None: ...

    def set_label(self, key: str, label: str) -> None: ...

    def label_file(self, directory: str, content: bytes) -> None: ...


class PosixDataset:
    kind = "posix"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.url = str(root)

    def put(self, key: str, data: bytes, label: str | None = None) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if label is not None:
            self.set_label(key, label)

    def set_label(self, key: str, label: str) -> None:
        os.setxattr(self.root / key, LABEL_XATTR, label.encode())

    def label_file(self, directory: str, content: bytes) -> None:
        folder = self.root / directory
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LABEL_FILE_NAME).write_bytes(content)


class S3Dataset:
    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "ds") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}"

    def put(self, key: str, data: bytes, label: str | None = None) -> None:
        extra = {"Tagging": f"{LABEL_TAG}={label}"} if label is not None else {}
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data, **extra)

    def set_label(self, key: str, label: str) -> None:
        self.client.put_object_tagging(
            Bucket=self.bucket,
            Key=f"{self.prefix}/{key}",
            Tagging={"TagSet": [{"Key": LABEL_TAG, "Value": label}]},
        )

    def label_file(self, directory: str, content: bytes) -> None:
        key = f"{directory}/{LABEL_FILE_NAME}" if directory else LABEL_FILE_NAME
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=content)


@pytest.fixture(params=["posix", "s3"])
def dataset(request: pytest.FixtureRequest, tmp_path: Path) -> Dataset:
    if request.param == "posix":
        return PosixDataset(tmp_path / "src")
    return S3Dataset(request.getfixturevalue("s3_client"), request.getfixturevalue("bucket"))


def fill(ds: Dataset, files: dict[str, bytes] = FILES, labels: dict[str, str] | None = None) -> None:
    for key, data in files.items():
        ds.put(key, data, (labels or {}).get(key))


def stage_with(
    ds: Dataset,
    dest: Path,
    job_ref: str,
    policy: Policy | None = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> StageResult:
    request = StagingRequest(source=ds.url, destination=str(dest), job_ref=job_ref)
    with open_ledger() as ledger:
        return run_staging(
            ledger, policy or Policy.default(), REQUESTER, request, on_plan=on_plan, options=OPTIONS
        )


def events_of(job_ref: str) -> list[AuditEvent]:
    with open_ledger() as ledger:
        return AuditTrail(ledger).query(job=job_ref)


def job_of(events: list[AuditEvent]) -> Job:
    job_ids = {e.job_id for e in events}
    assert len(job_ids) == 1 and None not in job_ids, job_ids
    with open_ledger() as ledger:
        return Jobs(ledger).get(job_ids.pop())  # type: ignore[arg-type]


def manifest_of(job_id: str) -> list[ManifestEntry]:
    with open_ledger() as ledger:
        return list(Manifests(ledger).entries(job_id))


def chain_intact() -> bool:
    with open_ledger() as ledger:
        return AuditTrail(ledger).verify().intact


def nothing_written(dest: Path, existed: bool) -> None:
    """A refused staging leaves the destination as it was: absent, or present and empty."""
    if existed:
        assert dest.is_dir()
        assert snapshot(dest) == {}, f"the destination was written to: {sorted(snapshot(dest))}"
    else:
        assert not dest.exists(), f"the destination was created: {sorted(snapshot(dest))}"
    assert not is_ready(dest)


# -- allowed ------------------------------------------------------------------------------------


def test_public_dataset_stages_and_every_step_is_audited(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset)
    dataset.label_file("", b"public\n")
    dest = tmp_path / "dest"

    result = stage_with(dataset, dest, "job-public")

    disk_manifest = assert_staged(dest, FILES)  # the label file is read, not staged
    assert (result.files, result.bytes) == (len(FILES), sum(map(len, FILES.values())))

    events = events_of("job-public")
    assert [e.action for e in events] == ["stage.requested", "policy.allowed", "stage.completed"]
    assert all(e.actor == "alice" and e.role == "local" and e.job_ref == "job-public" for e in events)
    assert all(e.source == dataset.url and e.destination == str(dest) for e in events)
    policy_version = Policy.default().version
    assert all(e.policy_version == policy_version for e in events)

    allowed = events[1]
    assert allowed.decision == "allow"
    assert allowed.reasons == ()
    assert allowed.details["highest_label"] == "public"
    assert allowed.details["offending"] == 0

    completed = events[2]
    assert completed.files == len(FILES)
    assert completed.bytes == sum(map(len, FILES.values()))
    assert completed.manifest_digest == result.digest
    assert len(result.digest) == 64
    assert completed.details["files_copied"] == len(FILES)
    assert completed.details["files_skipped"] == 0
    assert completed.details["verified_source"] + completed.details["verified_local"] == len(FILES)

    job = job_of(events)
    assert job.state == "ready"
    assert job.kind == "stage"
    assert (job.files, job.bytes, job.manifest_digest) == (len(FILES), result.bytes, result.digest)
    assert job.policy_version == policy_version
    assert job.error is None

    entries = manifest_of(job.id)
    assert [e.key for e in entries] == sorted(FILES)
    for entry in entries:
        assert entry.label == "public", entry
        assert entry.size == len(FILES[entry.key])
        assert entry.blake3 == blake3_hex(FILES[entry.key]), entry.key
        assert entry.blake3 == disk_manifest[entry.key]["blake3"]
        assert entry.verification == disk_manifest[entry.key]["verification"]
    assert chain_intact()


def test_own_lower_label_never_lowers_its_directorys(dataset: Dataset, tmp_path: Path) -> None:
    # sub/ is confidential by its label file; sub/b.bin tagged public itself stays
    # confidential (labels only rise), so the public-only policy refuses it. A higher own
    # label does raise: a.txt, tagged internal in a public root, is internal.
    files = {"a.txt": b"alpha", "sub/b.bin": payload("b", 1000)}
    fill(dataset, files, labels={"sub/b.bin": "public", "a.txt": "internal"})
    dataset.label_file("", b"public\n")
    dataset.label_file("sub", b"confidential\n")
    dest = tmp_path / "dest"

    with pytest.raises(PolicyDeniedError) as denied:
        stage_with(dataset, dest, "job-own")

    nothing_written(dest, existed=False)
    assert any(r.startswith("sub/b.bin ") and "confidential" in r for r in denied.value.decision.reasons)
    entries = manifest_of(job_of(events_of("job-own")).id)
    if dataset.kind == "s3":
        # S3 tags are read at copy time (test_tags_at_copy.py): the plan, denied by sub/'s
        # label file, never asked for them.
        assert {e.key: e.label for e in entries} == {"a.txt": "public", "sub/b.bin": "confidential"}
        assert {e.key: e.own_label for e in entries} == {"a.txt": None, "sub/b.bin": None}
        return
    assert {e.key: e.label for e in entries} == {"a.txt": "internal", "sub/b.bin": "confidential"}
    assert {e.key: e.own_label for e in entries} == {"a.txt": "internal", "sub/b.bin": "public"}


def test_custom_policy_stages_a_confidential_dataset(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset)
    dataset.label_file("", b"confidential\n")
    custom = Policy.parse(CONFIDENTIAL_POLICY)

    with pytest.raises(PolicyDeniedError):
        stage_with(dataset, tmp_path / "refused", "job-default")
    nothing_written(tmp_path / "refused", existed=False)

    dest = tmp_path / "dest"
    result = stage_with(dataset, dest, "job-custom", policy=custom)
    assert_staged(dest, FILES)

    events = events_of("job-custom")
    assert [e.action for e in events] == ["stage.requested", "policy.allowed", "stage.completed"]
    assert {e.policy_version for e in events} == {custom.version}
    assert custom.version != Policy.default().version
    assert events[1].details["highest_label"] == "confidential"
    assert events[2].manifest_digest == result.digest
    job = job_of(events)
    assert (job.state, job.policy_version) == ("ready", custom.version)
    assert {e.label for e in manifest_of(job.id)} == {"confidential"}


# -- denied: nothing moves ----------------------------------------------------------------------


def _confidential_own_label(ds: Dataset) -> None:
    fill(ds, labels={"sub/b.bin": "confidential"})
    ds.label_file("", b"public\n")


def _one_file_unlabelled(ds: Dataset) -> None:
    # No root label file; sub/ has its own, so only a.txt (at the root) has no label at all.
    fill(ds)
    ds.label_file("sub", b"public\n")


def _deeper_label_file_overrides(ds: Dataset) -> None:
    fill(ds)
    ds.label_file("", b"public\n")
    ds.label_file("sub/deep", b"confidential\n")


DENIALS = {
    "confidential-own-label": (_confidential_own_label, {"sub/b.bin": "confidential"}),
    "unlabelled-file": (_one_file_unlabelled, {"a.txt": "unclassified"}),
    "deeper-label-file": (_deeper_label_file_overrides, {"sub/deep/c.bin": "confidential"}),
}


@pytest.mark.parametrize("existed", [False, True], ids=["dest-absent", "dest-empty"])
@pytest.mark.parametrize("case", list(DENIALS))
def test_one_offending_object_denies_the_whole_dataset(
    dataset: Dataset, tmp_path: Path, case: str, existed: bool
) -> None:
    build, offending = DENIALS[case]
    build(dataset)
    dest = tmp_path / "dest"
    if existed:
        dest.mkdir()

    with pytest.raises(PolicyDeniedError) as denied:
        stage_with(dataset, dest, "job-denied")

    # An S3 tag is read only as its object is opened: the plan is allowed, the object is
    # refused before a byte of it is written (other objects may be copied; nothing is READY).
    at_copy = dataset.kind == "s3" and case == "confidential-own-label"
    if at_copy:
        assert not is_ready(dest)
        assert not set(offending) & set(data_files(dest) if dest.exists() else {})
    else:
        nothing_written(dest, existed)
    decision = denied.value.decision
    assert not decision.allowed
    assert decision.offending_count == len(offending)
    assert len(decision.reasons) == len(offending)
    for key, label in offending.items():
        (reason,) = [r for r in decision.reasons if r.startswith(f"{key} ")]
        assert label in reason
        assert key in str(denied.value) and label in str(denied.value)
    for key in set(FILES) - set(offending):
        assert not any(r.startswith(f"{key} ") for r in decision.reasons), decision.reasons

    events = events_of("job-denied")
    expected = ["stage.requested", "policy.allowed", "policy.denied"] if at_copy else None
    assert [e.action for e in events] == (expected or ["stage.requested", "policy.denied"])
    refused = events[-1]
    assert refused.decision == "deny"
    assert list(refused.reasons) == list(decision.reasons)
    assert refused.details["offending"] == len(offending)
    assert refused.policy_version == Policy.default().version
    job = job_of(events)
    assert job.state == "denied"
    # The ledger's manifest records what was asked for, each object with its resolved label.
    labels = {e.key: e.label for e in manifest_of(job.id)}
    assert sorted(labels) == sorted(FILES)
    for key, label in offending.items():
        assert labels[key] == ("public" if at_copy else label)  # at copy: the plan's, never staged
    assert at_copy or all(e.blake3 is None for e in manifest_of(job.id))
    assert chain_intact()


def test_label_file_above_the_dataset_root_applies(tmp_path: Path) -> None:
    # A subset of a labelled tree: the .classification in the parent of the staged directory
    # labels it (embedded, the parents are looked at up to the mount's root), and the manifest
    # says which file did.
    ds = PosixDataset(tmp_path / "parent" / "src")
    fill(ds)
    (tmp_path / "parent" / LABEL_FILE_NAME).write_bytes(b"public\n")
    dest = tmp_path / "dest"

    stage_with(ds, dest, "job-parent")

    job = job_of(events_of("job-parent"))
    assert {e.label for e in manifest_of(job.id)} == {"public"}
    allowed = [e for e in events_of("job-parent") if e.action == "policy.allowed"]
    assert f"{tmp_path}/parent/{LABEL_FILE_NAME} (public)" in allowed[0].details["label_files_consulted"][0]


def test_check_policy_gives_each_objects_label_and_where_it_came_from(tmp_path: Path) -> None:
    # The one look-up `policy check` (and `ls`/`du` of a source) use: labels from inside the
    # source and from above it, the filters applied.
    ds = PosixDataset(tmp_path / "parent" / "src")
    fill(ds)
    (tmp_path / "parent" / LABEL_FILE_NAME).write_bytes(b"internal\n")
    ds.put(f"sub/deep/{LABEL_FILE_NAME}", b"public\n")
    with planned_source(ds.url, key_filter=KeyFilter.of(exclude=["a.txt"])) as plan:
        resolver = label_resolver(plan, Policy.default())
        seen = {
            o.key: (r.label, r.origin) for o in plan.entries() for r in [resolver.resolve(o.key, o.label)]
        }
    _, decision = check_policy(Policy.default(), ds.url, KeyFilter.of(exclude=["a.txt"]))

    assert seen == {
        "sub/b.bin": ("internal", f"file:{tmp_path}/parent/{LABEL_FILE_NAME}"),
        "sub/deep/c.bin": ("public", f"file:sub/deep/{LABEL_FILE_NAME}"),
    }
    assert plan.files == len(seen) and not decision.allowed
    assert f"{tmp_path}/parent/{LABEL_FILE_NAME} (internal)" in decision.consulted[0]


def test_a_denial_names_the_parents_that_had_no_label_file(tmp_path: Path) -> None:
    ds = PosixDataset(tmp_path / "parent" / "src")
    fill(ds)
    dest = tmp_path / "dest"

    with pytest.raises(PolicyDeniedError) as denied:
        stage_with(ds, dest, "job-no-parent")

    assert denied.value.decision.offending_count == len(FILES)
    assert f"{tmp_path}/parent/{LABEL_FILE_NAME} (none)" in str(denied.value)
    assert f"{tmp_path}/{LABEL_FILE_NAME} (none)" in str(denied.value)
    nothing_written(dest, existed=False)


def test_malformed_label_file_is_refused_before_anything_moves(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset)
    dataset.label_file("", b"public confidential\n")
    dest = tmp_path / "dest"

    with pytest.raises(Exception, match=r"\.classification") as raised:
        stage_with(dataset, dest, "job-malformed")

    assert not isinstance(raised.value, PolicyDeniedError)
    nothing_written(dest, existed=False)
    actions = [e.action for e in events_of("job-malformed")]
    assert actions[0] == "stage.requested"
    assert "policy.allowed" not in actions and "stage.completed" not in actions


# -- a label changed between planning and copying -------------------------------------------------


FLIPS = {
    # name: (what changes, the key the error names, the key that must not be in the destination)
    "own-label-small-file": ("sub/b.bin", "sub/b.bin"),
    "own-label-ranged-file": ("sub/deep/c.bin", "sub/deep/c.bin"),
    "root-label-file": (LABEL_FILE_NAME, None),
}


@pytest.mark.parametrize("case", list(FLIPS))
def test_label_flipped_after_the_policy_allowed_is_caught(
    dataset: Dataset, tmp_path: Path, case: str
) -> None:
    flipped, must_be_absent = FLIPS[case]
    fill(dataset)
    dataset.label_file("", b"public\n")
    dest = tmp_path / "dest"
    seen: list[str] = []

    def flip(plan: Plan) -> None:
        # Called after the policy allowed the plan, before any byte moves.
        seen.append(plan.digest)
        assert [e.action for e in events_of("job-flip")] == ["stage.requested", "policy.allowed"]
        assert not dest.exists() or data_files(dest) == {}
        if flipped == LABEL_FILE_NAME:
            dataset.label_file("", b"confidential\n")
        else:
            dataset.set_label(flipped, "confidential")

    # An S3 tag is not read at planning: one set since is the object's label, put to the
    # policy as the object is opened (test_tags_at_copy.py), not a change.
    tag_at_copy = dataset.kind == "s3" and flipped != LABEL_FILE_NAME
    with pytest.raises(PolicyDeniedError if tag_at_copy else LabelChangedError) as changed:
        stage_with(dataset, dest, "job-flip", on_plan=flip)

    assert len(seen) == 1
    assert flipped in str(changed.value)
    assert not is_ready(dest)
    present = data_files(dest) if dest.exists() else {}
    if must_be_absent is None:
        assert present == {}, f"copied after its label file changed: {sorted(present)}"
    else:
        assert must_be_absent not in present, f"{must_be_absent} is visible after its label changed"
    for key, data in present.items():
        assert data == FILES[key]

    events = events_of("job-flip")
    if tag_at_copy:
        assert [e.action for e in events] == ["stage.requested", "policy.allowed", "policy.denied"]
        assert any(flipped in r and "confidential" in r for r in events[2].reasons), events[2].reasons
        assert job_of(events).state == "denied"
        return
    assert [e.action for e in events] == ["stage.requested", "policy.allowed", "stage.failed"]
    failed = events[2]
    assert any(flipped in r for r in failed.reasons), failed.reasons
    assert failed.details["error"] == "LabelChangedError"
    job = job_of(events)
    assert job.state == "failed"
    assert job.error is not None and flipped in job.error
    assert chain_intact()


def test_label_file_added_after_the_policy_allowed_is_caught(dataset: Dataset, tmp_path: Path) -> None:
    # The policy allowed sub/deep/c.bin as public (from the root label file). Before a byte
    # moves, someone labels sub/deep/ confidential with a new, deeper label file: the file's
    # label is now confidential, exactly as if an existing label file had been rewritten.
    fill(dataset)
    dataset.label_file("", b"public\n")
    dest = tmp_path / "dest"

    def relabel(plan: Plan) -> None:
        dataset.label_file("sub/deep", b"confidential\n")

    with pytest.raises(LabelChangedError):
        stage_with(dataset, dest, "job-added", on_plan=relabel)

    assert not is_ready(dest)
    present = data_files(dest) if dest.exists() else {}
    assert "sub/deep/c.bin" not in present, "a file now labelled confidential was staged"
    events = events_of("job-added")
    assert [e.action for e in events] == ["stage.requested", "policy.allowed", "stage.failed"]


# -- asking the policy without staging ------------------------------------------------------------


def test_check_policy_moves_nothing(dataset: Dataset, tmp_path: Path) -> None:
    _confidential_own_label(dataset)
    before = snapshot(tmp_path)

    plan, decision = check_policy(Policy.default(), dataset.url)

    assert not decision.allowed
    assert plan.files == len(FILES)
    assert decision.reasons and decision.reasons[0].startswith("sub/b.bin ")
    assert "confidential" in decision.reasons[0]
    assert snapshot(tmp_path) == before
    with open_ledger() as ledger:
        assert AuditTrail(ledger).query() == []

    plan, decision = check_policy(Policy.parse(CONFIDENTIAL_POLICY), dataset.url)
    assert decision.allowed
    assert decision.highest_label == "confidential"


# -- no credential reaches the ledger -------------------------------------------------------------


def _ledger_text() -> str:
    """Every audit event and every job, as text: what an auditor reading the ledger sees."""
    with open_ledger() as ledger:
        events = AuditTrail(ledger).query()
        jobs = [Jobs(ledger).get(job_id) for job_id in {e.job_id for e in events if e.job_id}]
    return "\n".join([*(repr(e.to_json()) for e in events), *(repr(j) for j in jobs)])


def test_scp_style_userinfo_in_a_source_path_is_refused_before_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative path that looks like "user:password@host:path", even as a real directory
    # here, may carry a password: refused in every mode, and nothing recorded.
    monkeypatch.chdir(tmp_path)
    ds = PosixDataset(Path("alice:hunter2@nas:data"))
    fill(ds)
    ds.label_file("", b"public\n")
    dest = tmp_path / "dest"

    with pytest.raises(InvalidInputError, match="user-info"):
        stage_with(ds, dest, "job-scp")

    assert events_of("job-scp") == []
    assert not dest.exists()
    assert "hunter2" not in _ledger_text().lower()


@pytest.mark.parametrize(
    "make_url",
    [
        pytest.param(
            lambda b, p: f"s3://{b}/ds?X-Amz-Credential=AKIAHUNTER2&X-Amz-Signature=hunter2",
            id="s3-presigned-query",
        ),
        pytest.param(lambda b, p: f"file://alice:hunter2@localhost{p}", id="file-userinfo"),
        pytest.param(lambda b, p: "alice:hunter2@nas:missing", id="scp-style-missing"),
    ],
)
def test_failed_staging_keeps_credentials_out_of_the_ledger(
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_url: Callable[[str, str], str],
) -> None:
    monkeypatch.chdir(tmp_path)
    s3 = S3Dataset(s3_client, bucket)
    fill(s3)
    s3.label_file("", b"public\n")
    posix = PosixDataset(tmp_path / "src")
    fill(posix)
    posix.label_file("", b"public\n")
    url = make_url(bucket, str(posix.root))
    with pytest.raises(InvalidInputError, match="credentials"), open_ledger() as ledger:
        # The request type itself refuses it: no layer ever holds a request with a secret in it.
        request = StagingRequest(source=url, destination=str(tmp_path / "dest"), job_ref="job-secret")
        run_staging(ledger, Policy.default(), REQUESTER, request)

    assert events_of("job-secret") == []  # refused before anything is recorded
    leaks = [line[:300] for line in _ledger_text().splitlines() if "hunter2" in line.lower()]
    assert leaks == [], "a credential reached the ledger"


def test_credentials_in_an_s3_url_are_bad_input_refused_before_the_ledger(
    tmp_path: Path, s3_endpoint: str
) -> None:
    # "s3://user:password@bucket/..." is bad input (InvalidInputError, CLI exit 2), refused
    # before the ledger records anything: a stage.requested would have to name the source.
    with pytest.raises(InvalidInputError), open_ledger() as ledger:
        request = StagingRequest(
            source="s3://AKIA:hunter2@some-bucket/ds", destination=str(tmp_path / "dest"), job_ref="job-bad"
        )
        run_staging(ledger, Policy.default(), REQUESTER, request)

    assert events_of("job-bad") == []
    assert "hunter2" not in _ledger_text().lower()
    assert not (tmp_path / "dest").exists()
