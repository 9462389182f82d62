"""Label sources fail closed: a label spelt in another case, a label file that is not a regular
file, two labels that disagree. On real directories and the real (loopback) S3 server,
through ``workers.staging.run_staging`` with the real SQLite ledger."""

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import is_ready, payload
from integration.workers.test_staging_policy import (
    OPTIONS,
    REQUESTER,
    Dataset,
    PosixDataset,
    S3Dataset,
    events_of,
    fill,
    nothing_written,
    stage_with,
)
from stagegate.errors import InvalidInputError
from stagegate.ledger import open_ledger
from stagegate.policies import LABEL_FILE_NAME, Policy, PolicyDeniedError
from stagegate.requests import StagingRequest
from stagegate.transfer import LabelChangedError
from stagegate.workers.staging import run_staging

pytestmark = pytest.mark.integration

FILES = {"a.txt": b"alpha", "sub/b.bin": payload("b", 1000)}


@pytest.fixture(params=["posix", "s3"])
def dataset(request: pytest.FixtureRequest, tmp_path: Path) -> Dataset:
    if request.param == "posix":
        return PosixDataset(tmp_path / "src")
    return S3Dataset(request.getfixturevalue("s3_client"), request.getfixturevalue("bucket"))


def set_labels(ds: Dataset, key: str, labels: dict[str, str]) -> None:
    """Give ``key`` the tags (S3) or ``user.``-xattrs (POSIX) ``name -> value``, names as spelt."""
    if isinstance(ds, PosixDataset):
        for name, value in labels.items():
            os.setxattr(ds.root / key, f"user.{name}", value.encode())
    else:
        assert isinstance(ds, S3Dataset)
        ds.client.put_object_tagging(
            Bucket=ds.bucket,
            Key=f"{ds.prefix}/{key}",
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in labels.items()]},
        )


def denied_reasons(ds: Dataset, dest: Path, job: str, tagged: str | None = None) -> list[str]:
    """The reasons of the denial; ``tagged``: the key denied by its own label, which on S3
    (a tag, read as the object is opened) refuses it at copy time with nothing of it written."""
    with pytest.raises(PolicyDeniedError) as denied:
        stage_with(ds, dest, job)
    if tagged is not None and ds.kind == "s3":
        assert not is_ready(dest)
        assert not (dest / tagged).exists()
        assert [e.action for e in events_of(job)] == ["stage.requested", "policy.allowed", "policy.denied"]
    else:
        nothing_written(dest, existed=False)
        assert [e.action for e in events_of(job)] == ["stage.requested", "policy.denied"]
    return list(denied.value.decision.reasons)


@pytest.mark.parametrize("name", ["Classification", "CLASSIFICATION"])
def test_label_named_in_another_case_counts(dataset: Dataset, tmp_path: Path, name: str) -> None:
    fill(dataset, FILES)
    dataset.label_file("", b"public\n")
    set_labels(dataset, "sub/b.bin", {name: "confidential"})

    reasons = denied_reasons(dataset, tmp_path / "dest", "job-case", tagged="sub/b.bin")

    assert len(reasons) == 1 and reasons[0].startswith("sub/b.bin ") and "confidential" in reasons[0]


@pytest.mark.parametrize("name", [" classification ", " Classification\t"])
def test_xattr_named_with_surrounding_space_counts(tmp_path: Path, name: str) -> None:
    # (The S3 server trims tag keys itself; the rule for tags is unit-tested.)
    ds = PosixDataset(tmp_path / "src")
    fill(ds, FILES)
    ds.label_file("", b"public\n")
    set_labels(ds, "sub/b.bin", {name: "confidential"})

    reasons = denied_reasons(ds, tmp_path / "dest", "job-space")

    assert len(reasons) == 1 and reasons[0].startswith("sub/b.bin ") and "confidential" in reasons[0]


def test_two_labels_that_disagree_are_refused(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset, FILES)
    dataset.label_file("", b"public\n")
    set_labels(dataset, "sub/b.bin", {"classification": "public", "Classification": "confidential"})

    (reason,) = denied_reasons(dataset, tmp_path / "dest", "job-two", tagged="sub/b.bin")

    assert reason.startswith("sub/b.bin ") and "confidential, public" in reason


def test_two_labels_that_agree_are_one(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset, FILES)
    dataset.label_file("", b"public\n")
    set_labels(dataset, "sub/b.bin", {"classification": "public", "Classification": "Public "})
    stage_with(dataset, tmp_path / "dest", "job-agree")
    assert (tmp_path / "dest" / "sub" / "b.bin").read_bytes() == FILES["sub/b.bin"]


# -- a label file that is not a regular file ----------------------------------------------------


def _symlink(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"public\n")
    os.symlink(target, root / "sub" / LABEL_FILE_NAME)


def _fifo(root: Path, tmp_path: Path) -> None:
    os.mkfifo(root / "sub" / LABEL_FILE_NAME)


def _directory(root: Path, tmp_path: Path) -> None:
    (root / "sub" / LABEL_FILE_NAME).mkdir()


def _directory_with_a_file(root: Path, tmp_path: Path) -> None:
    (root / "sub" / LABEL_FILE_NAME).mkdir()
    (root / "sub" / LABEL_FILE_NAME / "x").write_bytes(b"confidential\n")


NOT_REGULAR = {
    "symlink": _symlink,
    "fifo": _fifo,
    "directory": _directory,
    "directory-with-a-file": _directory_with_a_file,
}


@pytest.mark.parametrize("kind", list(NOT_REGULAR))
def test_posix_label_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    ds = PosixDataset(tmp_path / "src")
    fill(ds, FILES)
    ds.label_file("", b"public\n")
    NOT_REGULAR[kind](ds.root, tmp_path)
    dest = tmp_path / "dest"
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            stage_with(ds, dest, "job-odd")
        except BaseException as exc:
            outcome.append(exc)

    # A FIFO must never block the staging: run it aside and ask whether it came back.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        with open(ds.root / "sub" / LABEL_FILE_NAME, "wb"):  # unblock the reader, then fail
            pass
        pytest.fail("the staging blocked on the label file")
    (error,) = outcome
    assert isinstance(error, InvalidInputError) and not isinstance(error, PolicyDeniedError), error
    assert f"sub/{LABEL_FILE_NAME}" in str(error) and "regular file" in str(error)
    nothing_written(dest, existed=False)
    actions = [e.action for e in events_of("job-odd")]
    assert actions == ["stage.requested", "stage.failed"]


@pytest.mark.parametrize(
    "objects",
    [
        {f"sub/{LABEL_FILE_NAME}/": b""},  # a "directory" marker
        {f"sub/{LABEL_FILE_NAME}/x": b"confidential\n"},  # a "directory" holding an object
    ],
    ids=["marker", "prefix"],
)
def test_s3_label_file_that_is_a_directory_is_refused(
    s3_client: Any, bucket: str, tmp_path: Path, objects: dict[str, bytes]
) -> None:
    ds = S3Dataset(s3_client, bucket)
    fill(ds, FILES)
    ds.label_file("", b"public\n")
    for key, body in objects.items():
        s3_client.put_object(Bucket=bucket, Key=f"{ds.prefix}/{key}", Body=body)
    dest = tmp_path / "dest"

    with pytest.raises(InvalidInputError, match=r"sub/\.classification.*regular file") as raised:
        stage_with(ds, dest, "job-dir")

    assert not isinstance(raised.value, PolicyDeniedError)
    nothing_written(dest, existed=False)
    assert [e.action for e in events_of("job-dir")] == ["stage.requested", "stage.failed"]


def test_oversized_label_file_is_bad_input(dataset: Dataset, tmp_path: Path) -> None:
    fill(dataset, FILES)
    dataset.label_file("", b"public\n")
    dataset.label_file("sub", b"public\n" + b" " * 10_000)

    with pytest.raises(InvalidInputError, match=r"sub/\.classification: 10007 bytes") as raised:
        stage_with(dataset, tmp_path / "dest", "job-big")

    assert not isinstance(raised.value, PolicyDeniedError)
    nothing_written(tmp_path / "dest", existed=False)


# -- a label file rewritten while the only batch copies ------------------------------------------


def test_label_file_rewritten_during_the_only_batch_stops_the_staging(
    dataset: Dataset, tmp_path: Path
) -> None:
    # One batch: its label files were checked as it began. The root label file turns
    # confidential while it copies; the re-read before READY catches it.
    files = {f"f{i}.bin": payload(f"f{i}", 20_000) for i in range(6)}
    fill(dataset, files)
    dataset.label_file("", b"public\n")
    dest = tmp_path / "dest"
    rewritten: list[int] = []

    def on_progress(progress: Any) -> None:
        if progress.files_done >= 1 and not rewritten:
            dataset.label_file("", b"confidential\n")
            rewritten.append(progress.files_done)

    request = StagingRequest(source=dataset.url, destination=str(dest), job_ref="job-relabel")
    with pytest.raises(LabelChangedError, match=r"\.classification"), open_ledger() as ledger:
        run_staging(ledger, Policy.default(), REQUESTER, request, on_progress=on_progress, options=OPTIONS)

    assert rewritten, "the label file was never rewritten mid-copy"
    assert not is_ready(dest)
    events = events_of("job-relabel")
    assert [e.action for e in events] == ["stage.requested", "policy.allowed", "stage.failed"]
    assert events[2].details["error"] == "LabelChangedError"
    assert any(LABEL_FILE_NAME in r for r in events[2].reasons)


def _stage_aside(ds: PosixDataset, dest: Path, job: str, on_plan: Any) -> BaseException | None:
    """Stage in a thread; fail the test if it blocks (a FIFO opened for reading waits for a
    writer), else return what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            stage_with(ds, dest, job, on_plan=on_plan)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        for fifo in ds.root.rglob(LABEL_FILE_NAME):
            if fifo.is_fifo():
                with open(fifo, "wb"):  # let the blocked reader go
                    pass
        worker.join(30)
        pytest.fail("the staging blocked on a FIFO")
    return outcome[0]


@pytest.mark.parametrize("where", ["replaces-the-planned-file", "appears-in-a-directory"])
def test_fifo_label_file_after_planning_stops_the_staging_without_blocking(
    tmp_path: Path, where: str
) -> None:
    ds = PosixDataset(tmp_path / "src")
    fill(ds, FILES)
    ds.label_file("", b"public\n")
    dest = tmp_path / "dest"
    fifo = ds.root / (LABEL_FILE_NAME if where == "replaces-the-planned-file" else f"sub/{LABEL_FILE_NAME}")

    def swap(plan: Any) -> None:
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)

    error = _stage_aside(ds, dest, "job-fifo", swap)

    assert isinstance(error, LabelChangedError), error
    assert LABEL_FILE_NAME in str(error)
    assert not is_ready(dest)
    assert [e.action for e in events_of("job-fifo")] == ["stage.requested", "policy.allowed", "stage.failed"]
