"""The embedded half of the Python API: :func:`stage` and :func:`egress` run here, in this
process, as ``stagegate stage SRC --to DIR`` and ``stagegate egress RUN --to DEST`` do.

Both commands and both functions go through :func:`stage_here` and :func:`egress_here`, so
the steps, the audit trail, the outcomes and the errors are the same: a denial raises
:class:`stagegate.policies.PolicyDeniedError` (nothing moved; the CLI exits 3 with its
message), bad input :class:`stagegate.errors.InvalidInputError` or
:class:`stagegate.errors.NotFoundError` (exit 2), a failed copy the error itself (exit 1).
"""

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from stagegate.client import context
from stagegate.client.progress_feed import ordered
from stagegate.durability import Durability
from stagegate.errors import InvalidInputError
from stagegate.progress import ListingCallback, ProgressCallback
from stagegate.requests import BestMode, EgressRequest, StagingRequest
from stagegate.urls import refuse_credentials
from stagegate.workers.staging import StagingOptions, run_staging

if TYPE_CHECKING:  # boto3 and the checkpoint layer load when an egress runs, not with every command
    from stagegate.workers.egress import EgressOptions, EgressOutcome

__all__ = [
    "Egressed",
    "Staged",
    "StagedDataset",
    "egress",
    "egress_here",
    "egress_request",
    "resolve_here",
    "stage",
    "stage_here",
]

_STAGING_DEFAULTS = StagingOptions()


class StagedDataset(Protocol):
    """What the client reads of a finished staging (the engine's result has it): a shape,
    so the client names nothing of the engine."""

    @property
    def source(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def state_dir(self) -> str: ...
    @property
    def files(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def files_copied(self) -> int: ...
    @property
    def bytes_copied(self) -> int: ...
    @property
    def files_skipped(self) -> int: ...
    @property
    def files_removed(self) -> int: ...
    @property
    def verified_source(self) -> int: ...
    @property
    def verified_local(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    def to_json(self) -> dict[str, object]: ...


def stage_here(
    request: StagingRequest,
    options: StagingOptions,
    policy_path: Path | None = None,
    on_progress: ProgressCallback | None = None,
    on_listed: ListingCallback | None = None,
) -> StagedDataset:
    """Stage ``request`` (its destination a directory here) under the policy at ``policy_path``
    (default: $STAGEGATE_POLICY, else the shipped one), recorded in the embedded ledger. What
    ``stagegate stage --to`` runs; ``on_listed`` hears how far planning has listed the source."""
    policy = context.load_policy(policy_path)
    with context.ledger() as ledger:
        return run_staging(
            ledger,
            policy,
            context.local_requester(),
            request,
            on_progress=on_progress,
            options=options,
            on_listed=on_listed,
        )


@dataclass(frozen=True, slots=True)
class Staged:
    """A staged dataset: ``path`` holds exactly the source's files, every one verified;
    ``state_dir`` (beside it) holds ``manifest.jsonl`` (each file's BLAKE3) and ``READY``."""

    source: str
    path: Path
    state_dir: Path
    digest: str  # the manifest's Merkle root: the same data staged again has the same digest
    files: int
    bytes: int
    files_copied: int  # copied this time
    bytes_copied: int
    files_kept: int  # found already present and verified (a rerun resumes)
    verified_source: int  # checked against a checksum the source publishes
    verified_local: int  # hashed here only: the source publishes none
    seconds: float
    files_removed: int = 0  # gone from the source, or strays: removed (``sync``, ``replace``)

    @classmethod
    def of(cls, result: StagedDataset) -> "Staged":
        return cls(
            source=result.source,
            path=Path(result.destination),
            state_dir=Path(result.state_dir),
            digest=result.digest,
            files=result.files,
            bytes=result.bytes,
            files_copied=result.files_copied,
            bytes_copied=result.bytes_copied,
            files_kept=result.files_skipped,
            verified_source=result.verified_source,
            verified_local=result.verified_local,
            seconds=result.seconds,
            files_removed=result.files_removed,
        )


def _check_tunables(engine_config: Callable[[], object]) -> None:
    """The engine's own check of the tunables (``concurrency must be positive``), run before
    anything is recorded and raised as bad input."""
    try:
        engine_config()
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def stage(
    source: str,
    to: str | os.PathLike[str],
    *,
    job: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    concurrency: int = _STAGING_DEFAULTS.concurrency,
    part_size: int = _STAGING_DEFAULTS.part_size,
    multipart_threshold: int = _STAGING_DEFAULTS.multipart_threshold,
    bandwidth_limit: int | None = None,
    durability: str = Durability.BATCH.value,
    processes: int | None = None,
    replace: bool = False,
    sync: bool = False,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Staged:
    """Copy the dataset at ``source`` into the directory ``to``, here, verifying every byte:
    ``stagegate stage SOURCE --to DIR`` as a function.

    ``source`` is ``s3://bucket/prefix`` (credentials from the AWS chain, ``AWS_ENDPOINT_URL``
    for an S3-compatible store), a local or NFS path, ``file:///path``, or another fsspec URL.
    ``to`` is created if missing; an existing one must be empty or hold an earlier staging of
    the same source, which is then resumed (files already there and verified are kept).
    ``replace`` (``--replace``): the new dataset replaces whatever ``to`` holds; ``sync``
    (``--sync``): files gone from the source are removed, after the new set is verified.
    ``include``/``exclude`` (``--include``/``--exclude``, rclone's glob rules) choose which keys
    of the source are the dataset, before it is planned: labels, digest and ``to`` cover exactly
    those. Without ``replace``/``sync``, a ``to`` holding another source's dataset or files the
    source lacks raises :class:`stagegate.errors.InvalidInputError` naming them, and nothing
    changes.

    Before a byte moves every object's label is checked against the policy (``policy``: a
    policy file; default ``$STAGEGATE_POLICY``, else the shipped one, public data only). Each
    staging is recorded in the embedded ledger's audit trail (``job`` is your reference).

    ``progress`` receives :class:`stagegate.progress.Progress` snapshots, one at a time and
    never going backwards, from the copy threads: keep it quick. The sizes are bytes (per
    second for ``bandwidth_limit``); ``durability`` is ``"batch"`` or ``"file"``; ``processes``
    (``--processes``) copy small files on that many cores (None: ``STAGEGATE_COPY_PROCESSES``,
    else one per four cores).

    Raises :class:`stagegate.policies.PolicyDeniedError` (nothing moved, nothing visible),
    :class:`stagegate.errors.InvalidInputError` for bad input (an unsafe key, a destination
    holding something else), :class:`stagegate.errors.NotFoundError` for a source that does
    not exist, and the copy's own error (an ``OSError``, a ``StagegateError``) when it fails;
    every outcome is audited, and a rerun resumes.
    """
    refuse_credentials(source, "source URL")  # before it reaches the ledger
    destination = os.fspath(to)
    if not destination.strip():
        raise InvalidInputError("to is empty: name the directory to stage into (a new or empty one)")
    if Path(destination).exists() and not Path(destination).is_dir():
        raise InvalidInputError(f"{destination} is not a directory: name the directory to stage into")
    try:
        chosen_durability = Durability(durability)
    except ValueError:
        known = ", ".join(d.value for d in Durability)
        raise InvalidInputError(f"durability must be one of {known}, not {durability!r}") from None
    options = StagingOptions(
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        bandwidth_limit=bandwidth_limit,
        durability=chosen_durability,
        processes=processes,
    )
    _check_tunables(options.transfer_config)
    request = StagingRequest(
        source=source,
        destination=destination,
        job_ref=job,
        replace=replace,
        sync=sync,
        include=tuple(include),
        exclude=tuple(exclude),
    )
    policy_path = None if policy is None else Path(policy)
    return Staged.of(stage_here(request, options, policy_path, ordered(progress)))


# -- egress -------------------------------------------------------------------------------------


def _real_local(destination: str) -> str:
    """A local destination (a path, ``file:///path``) as the real absolute path; URLs as given."""
    if "://" in destination and not destination.startswith("file://"):
        return destination
    return os.path.realpath(destination.removeprefix("file://"))


def resolve_here(run_dir: Path, destination: str) -> tuple[Path, str]:
    """``run_dir`` and a local ``destination`` with the caller's own links resolved: an egress
    here acts with the user's own rights, so the policy decides about the real directories
    (/home -> /mnt/home), and the walk that follows (which refuses every link) meets none."""
    return Path(os.path.realpath(run_dir)), _real_local(destination)


def egress_request(
    run_dir: str | os.PathLike[str],
    destination: str,
    *,
    latest: int | None = None,
    best: str | None = None,
    mode: BestMode | None = None,
    names: Iterable[str] = (),
    job: str | None = None,
    delete_unselected: bool = False,
    node: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> EgressRequest:
    """The request to egress checkpoints of ``run_dir`` (relative: to the current directory):
    here (``node`` None) with the caller's own links resolved (:func:`resolve_here`), or on
    ``node``'s worker as named. Raises :class:`InvalidInputError` for a bad selection."""
    path = Path(run_dir)
    if node is None:
        path, destination = resolve_here(path, destination)
    return EgressRequest(
        run_dir=str(path if path.is_absolute() else Path.cwd() / path),
        destination=destination,
        latest=latest,
        best=best,
        mode=mode,
        names=tuple(names),
        job_ref=job,
        delete_unselected=delete_unselected,
        node=node,
        include=tuple(include),
        exclude=tuple(exclude),
    )


def egress_here(
    request: EgressRequest,
    options: "EgressOptions",
    policy_path: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> "EgressOutcome":
    """Egress ``request`` here, under the policy at ``policy_path``, recorded in the embedded
    ledger. What ``stagegate egress`` runs without ``--node``."""
    from stagegate.workers.egress import run_egress

    policy = context.load_policy(policy_path)
    with context.ledger() as ledger:
        return run_egress(
            ledger, policy, context.local_requester(), request, options, on_progress=on_progress
        )


@dataclass(frozen=True, slots=True)
class Egressed:
    """A finished egress: every file of the ``selected`` checkpoints is verified at
    ``destination``; ``id`` names it in the audit trail (``stagegate audit query --job ID``)."""

    id: str
    destination: str
    selected: tuple[str, ...]
    labels: dict[str, str]  # checkpoint -> the label the policy decided on
    files: int
    files_kept: int  # already at the destination with the same size and checksum
    bytes: int
    checksums: dict[str, str]  # destination key -> checksum
    deleted: tuple[tuple[str, int], ...] = field(default=())  # unselected checkpoint -> bytes freed
    seconds: float = 0.0


def egress(
    run_dir: str | os.PathLike[str],
    to: str,
    *,
    latest: int | None = None,
    best: str | None = None,
    mode: BestMode | None = None,
    names: Iterable[str] = (),
    job: str | None = None,
    delete_unselected: bool = False,
    policy: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    concurrency: int | None = None,
    part_size: int | None = None,
    multipart_threshold: int | None = None,
    bandwidth_limit: int | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Egressed:
    """Copy the selected checkpoints of the training run ``run_dir`` to ``to``
    (``s3://bucket/prefix``, an absolute path or ``file:///path``), verified, if the policy
    allows: ``stagegate egress RUN_DIR --to DEST`` as a function.

    The selection is the union of ``latest`` (the N newest), ``best`` (the best value of a
    metric; ``mode`` ``"min"`` or ``"max"``, needed unless the metric's name says it) and
    ``names``. A checkpoint's label only rises: the highest of its own, the nearest
    ``.classification`` in the run directory, and the datasets you staged under ``job``.
    ``delete_unselected`` deletes the other checkpoints once every selected file is verified
    at the destination. ``include``/``exclude`` (rclone's glob rules) choose files of the
    selected checkpoints. Tunables left as None take the CLI's defaults.

    Raises :class:`stagegate.policies.PolicyDeniedError` (nothing moved, nothing deleted),
    :class:`stagegate.errors.InvalidInputError` for a bad selection or destination,
    :class:`stagegate.errors.NotFoundError` for a missing run directory or checkpoint, and the
    copy's own error when it fails; every outcome is audited.
    """
    from stagegate.workers.egress import EgressOptions

    given = {
        "concurrency": concurrency,
        "part_size": part_size,
        "multipart_threshold": multipart_threshold,
        "bandwidth_limit": bandwidth_limit,
    }
    options = replace(EgressOptions(), **{k: v for k, v in given.items() if v is not None})
    _check_tunables(lambda: options.egress_config().transfer_config())
    request = egress_request(
        run_dir,
        to,
        latest=latest,
        best=best,
        mode=mode,
        names=names,
        job=job,
        delete_unselected=delete_unselected,
        include=include,
        exclude=exclude,
    )
    policy_path = None if policy is None else Path(policy)
    started = time.monotonic()
    outcome = egress_here(request, options, policy_path, ordered(progress))
    result = outcome.result
    assert result is not None  # run_egress returns only once the copy is verified
    return Egressed(
        id=outcome.job_id,
        destination=request.destination,
        selected=tuple(c.name for c in outcome.selection.selected),
        labels={c.name: c.label for c in outcome.labels},
        files=len(result.files),
        files_kept=result.files_present,
        bytes=result.bytes,
        checksums=result.checksums,
        deleted=tuple(outcome.deleted),
        seconds=time.monotonic() - started,
    )
