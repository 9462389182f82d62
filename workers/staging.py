"""The staging step: plan, ask the policy, copy, and record every crossing in the ledger.

Every state change goes through :class:`StagingRun`'s one ``_audit`` method, so the trail
holds ``stage.requested``, then ``policy.allowed`` or ``policy.denied``, then
``stage.completed`` or ``stage.failed`` for every staging, whatever went wrong. The
embedded client calls :func:`run_staging` in-process; the service's tasks will call the
same steps.
"""

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from stagegate.actions import AuditAction
from stagegate.durability import Durability
from stagegate.errors import InvalidInputError
from stagegate.key_filters import KeyFilter
from stagegate.ledger import AuditTrail, CopiedEntry, Jobs, Ledger, ManifestEntry, Manifests, NewEvent
from stagegate.policies import (
    LABEL_FILE_NAME,
    LABEL_TAG,
    LABEL_XATTR,
    Decision,
    LabelResolver,
    Policy,
    PolicyDeniedError,
    Zone,
)
from stagegate.progress import ListingCallback, ProgressCallback
from stagegate.requests import StagingRequest
from stagegate.states import StagingState
from stagegate.transfer import (
    LabelChangedError,
    LabelGate,
    LabelSpec,
    Plan,
    SourceObject,
    StageResult,
    TransferConfig,
    open_source,
    plan_dataset,
    read_manifest,
    stage,
)
from stagegate.transfer.label_sources import LabelFileAbove
from stagegate.transfer.plan import LabelFile
from stagegate.transfer.sources import Source, source_recipe
from stagegate.urls import refuse_credentials
from stagegate.workers.settings import copy_processes

ROWS_PER_ADD = 5000  # manifest rows per ledger transaction while the plan is decided on

__all__ = [
    "OwnLabelGate",
    "Requester",
    "StagingOptions",
    "check_policy",
    "consulted_label_files",
    "planned_source",
    "run_staging",
]

LABELS = LabelSpec(tag=LABEL_TAG, xattr=LABEL_XATTR, file_name=LABEL_FILE_NAME)


@dataclass(frozen=True, slots=True)
class StagingOptions:
    """The tunables a caller may set; plain values, so they can travel in a task message."""

    concurrency: int = 16
    part_size: int = 64 << 20
    multipart_threshold: int = 128 << 20
    bandwidth_limit: int | None = None
    durability: Durability = Durability.BATCH
    # copy processes for small files (transfer.copy_processes); None: the setting, else by cores
    processes: int | None = None

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            processes=copy_processes(self.processes),
            part_size=self.part_size,
            multipart_threshold=self.multipart_threshold,
            bandwidth_limit=self.bandwidth_limit,
            durability=self.durability,
            recheck_labels=True,
        )


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: in embedded mode the operating-system user."""

    actor: str
    role: str


def resolver_of(
    label_files: Mapping[str, LabelFile], above: Iterable[LabelFileAbove], policy: Policy
) -> LabelResolver:
    """The resolver of the label files in a source (by directory) and above it (nearest first),
    ordered by the policy's levels (an own label may only raise its directory's)."""
    return resolver_of_contents({d: f.content for d, f in label_files.items()}, above, policy)


def resolver_of_contents(
    contents: Mapping[str, bytes], above: Iterable[LabelFileAbove], policy: Policy
) -> LabelResolver:
    """As :func:`resolver_of`, from the label files' contents by directory (as the re-scan reads them)."""
    found_above = [(a.where, a.content) for a in above if a.content is not None]
    return LabelResolver(contents, policy.levels, found_above)


def label_resolver(plan: Plan, policy: Policy) -> LabelResolver:
    """The resolver for a plan's objects, from the label files it read."""
    return resolver_of(plan.label_files, plan.label_files_above, policy)


def consulted_label_files(plan: Plan) -> str:
    """Which label files labelled ``plan`` (those in the source, then every place above it that
    was looked at, with what it holds or ``none``): a denial says it, so that a user who finds
    their data unclassified learns where a ``.classification`` was looked for."""
    inside = ", ".join(f.object.key for _, f in sorted(plan.label_files.items())) or "none"
    above = ", ".join(
        f"{a.where} ({'none' if a.content is None else a.content.decode('utf-8', 'replace').strip()[:40]})"
        for a in plan.label_files_above
    )
    return f"label files consulted: in the source: {inside}; above it: {above or 'none looked for'}"


def manifest_entries(plan: Plan, resolver: LabelResolver) -> Iterator[ManifestEntry]:
    """The ledger's manifest rows for ``plan``: each object with its resolved label, and what
    a node worker needs to read it again without listing (mtime, checksum algorithm, own label)."""
    for o in plan.entries():
        yield manifest_entry(o, resolver.resolve(o.key, o.label).label)


def manifest_entry(o: SourceObject, label: str) -> ManifestEntry:
    """The manifest row of ``o``, whose resolved label is ``label``."""
    return ManifestEntry(
        key=o.key,
        size=o.size,
        revision=o.revision,
        version=o.version,
        label=label,
        mtime=o.mtime,
        checksum_algorithm=o.checksum_algorithm,
        own_label=o.label,
    )


class OwnLabelGate:
    """The policy's word on an object's own label as the engine opens it, before a byte of it
    is written (:data:`transfer.engine.LabelGate`).

    Where the plan read every own label (``labels_listed``: POSIX xattrs, S3 in the
    ``object_tags: at_plan`` mode), the policy already decided on it, and any change since
    fails the staging (:class:`LabelChangedError`). Where it did not (S3 tags, read only for
    objects whose GET reports some), the label the object has now may only raise its
    directory's: the raised label is put to the policy, and one above what ``zone`` accepts
    refuses the staging (:class:`PolicyDeniedError` naming the object); one within it is
    returned, to be recorded as the object's label.
    """

    def __init__(self, policy: Policy, resolver: LabelResolver, zone: Zone, labels_listed: bool) -> None:
        self._policy = policy
        self._resolver = resolver
        self._zone = zone
        self._labels_listed = labels_listed

    def __call__(self, obj: SourceObject, own: str | None) -> str | None:
        if own == obj.label:
            return None  # what the plan decided on
        if self._labels_listed:
            raise LabelChangedError(f"{obj.key}: its label changed since planning ({obj.label!r} -> {own!r})")
        label = self._resolver.resolve(obj.key, own).label
        decision = self._policy.decide(self._zone, [(obj.key, label)])
        if not decision.allowed:
            raise PolicyDeniedError(decision)
        return label


class _PlannedGate:
    """A run's :class:`OwnLabelGate`, made when first asked: the engine opens nothing before
    the plan, whose resolver it needs. It pickles as that gate, so a copy process gets the
    policy and the plan's label files, never the run with its ledger."""

    def __init__(self, run: "StagingRun", labels_listed: bool) -> None:
        self._run = run
        self._labels_listed = labels_listed

    def _gate(self) -> OwnLabelGate:
        resolver = self._run._resolver
        assert resolver is not None, "an object opened before the plan"
        return OwnLabelGate(self._run._policy, resolver, Zone.staging(), self._labels_listed)

    def __call__(self, obj: SourceObject, own: str | None) -> str | None:
        return self._gate()(obj, own)

    def __reduce__(self) -> tuple[type[OwnLabelGate], tuple[Policy, LabelResolver, Zone, bool]]:
        gate = self._gate()
        return OwnLabelGate, (gate._policy, gate._resolver, gate._zone, gate._labels_listed)


def decide_plan(policy: Policy, plan: Plan, zone: Zone, resolver: LabelResolver) -> Decision:
    """The policy's decision on every object of ``plan``, streamed from its spill file, with the
    label files consulted (:func:`consulted_label_files`)."""
    decision = policy.decide(zone, ((o.key, resolver.resolve(o.key, o.label).label) for o in plan.entries()))
    return dataclasses.replace(decision, consulted=(consulted_label_files(plan),))


def record_and_decide(
    manifests: Manifests, job_id: str, policy: Policy, plan: Plan, zone: Zone, resolver: LabelResolver
) -> Decision:
    """``plan``'s manifest rows added to job ``job_id`` (:func:`manifest_entries`) and the
    policy's decision on them (:func:`decide_plan`), in one pass over the spill file, each label
    resolved once; rows go in chunks as the decision streams, so memory stays one chunk."""
    pending: list[ManifestEntry] = []

    def labelled() -> Iterator[tuple[str, str]]:
        for o in plan.entries():
            label = resolver.resolve(o.key, o.label).label
            pending.append(manifest_entry(o, label))
            if len(pending) >= ROWS_PER_ADD:
                manifests.add(job_id, pending)
                pending.clear()
            yield o.key, label
        manifests.add(job_id, pending)

    rows = labelled()
    decision = policy.decide(zone, rows)
    for _ in rows:  # a decision that stopped early still leaves every row recorded
        pass
    return dataclasses.replace(decision, consulted=(consulted_label_files(plan),))


def decision_details(decision: Decision) -> dict[str, object]:
    """What a ``policy.allowed`` / ``policy.denied`` event records of the decision beyond its reasons."""
    return {
        "offending": decision.offending_count,
        "highest_label": decision.highest_label,
        "label_files_consulted": list(decision.consulted),
    }


class StagingRun:
    """One staging, from request to ready (or denied, or failed), recorded as it goes."""

    def __init__(self, ledger: Ledger, policy: Policy, requester: Requester, request: StagingRequest) -> None:
        self._policy = policy
        self._requester = requester
        self._request = request
        self._trail = AuditTrail(ledger)
        self._jobs = Jobs(ledger)
        self._manifests = Manifests(ledger)
        self._plan: Plan | None = None
        self._resolver: LabelResolver | None = None
        self.denied = False  # audited as policy.denied
        self.job = self._jobs.create(
            kind="stage",
            actor=requester.actor,
            role=requester.role,
            source=request.source,
            destination=str(request.destination),
            job_ref=request.job_ref,
            state=StagingState.PLANNING,
            policy_version=policy.version,
        )
        # What may go from the destination is part of what was asked: on the trail before a byte moves.
        wanted = {name: True for name in ("replace", "sync") if getattr(request, name)}
        self._audit(AuditAction.STAGE_REQUESTED, details=wanted)

    def _audit(self, action: str, **fields: object) -> None:
        plan = self._plan
        self._trail.append(
            NewEvent(
                actor=self._requester.actor,
                role=self._requester.role,
                action=action,
                source=self._request.source,
                destination=str(self._request.destination),
                job_id=self.job.id,
                job_ref=self._request.job_ref,
                policy_version=self._policy.version,
                manifest_digest=plan.digest if plan else None,
                files=plan.files if plan else 0,
                bytes=plan.bytes if plan else 0,
                **fields,  # type: ignore[arg-type]
            )
        )

    def on_plan(self, plan: Plan) -> None:
        """Between planning and the first byte: record the manifest, ask the policy."""
        self._plan = plan
        resolver = self._resolver = label_resolver(plan, self._policy)
        zone = Zone.staging()
        decision = record_and_decide(self._manifests, self.job.id, self._policy, plan, zone, resolver)
        details = decision_details(decision)
        if not decision.allowed:
            self.deny(decision)
            raise PolicyDeniedError(decision)
        self._audit(AuditAction.POLICY_ALLOWED, decision="allow", details=details)
        self._update_job(plan, StagingState.TRANSFERRING)

    def deny(self, decision: Decision) -> None:
        """Record the policy's refusal: of the plan, or of an object whose own label, read as
        it was opened, raised its label above what the zone accepts (nothing of it written)."""
        assert self._plan is not None
        details = decision_details(decision)
        self._audit(AuditAction.POLICY_DENIED, decision="deny", reasons=decision.reasons, details=details)
        self._update_job(self._plan, StagingState.DENIED)
        self.denied = True

    def label_gate(self, source: Source) -> LabelGate:
        """The gate for ``source``'s objects, once the plan is known (the resolver is the plan's)."""
        return _PlannedGate(self, source.labels_listed)

    def _update_job(self, plan: Plan, state: str) -> None:
        self._jobs.update(
            self.job.id, state=state, manifest_digest=plan.digest, files=plan.files, bytes=plan.bytes
        )

    def completed(self, result: StageResult) -> None:
        self._manifests.record_copies(
            self.job.id,
            (
                CopiedEntry(key=r.key, blake3=r.blake3, verification=r.verification.value, label=r.label)
                for r in read_manifest(result.destination)
            ),
        )
        details = {
            "files_copied": result.files_copied,
            "files_skipped": result.files_skipped,
            "files_removed": result.files_removed,
            "verified_source": result.verified_source,
            "verified_local": result.verified_local,
            "seconds": result.seconds,
        }
        self._audit(AuditAction.STAGE_COMPLETED, details=details)
        self._jobs.update(self.job.id, state=StagingState.READY)

    def failed(self, error: BaseException) -> None:
        reason = str(error) or type(error).__name__
        self._audit(AuditAction.STAGE_FAILED, reasons=(reason,), details={"error": type(error).__name__})
        self._jobs.update(self.job.id, state=StagingState.FAILED, error=reason)


def run_staging(
    ledger: Ledger,
    policy: Policy,
    requester: Requester,
    request: StagingRequest,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    options: StagingOptions | None = None,
    on_listed: ListingCallback | None = None,
) -> StageResult:
    """Stage ``request.source`` into ``request.destination`` in this process; ``on_listed``
    hears how far planning has listed the source, ``on_progress`` how far the copy is.

    Raises :class:`policies.PolicyDeniedError` (nothing moved) when the policy refuses any
    object, and the transfer's own errors when the copy fails; each outcome is audited.
    ``request.replace`` and ``request.sync`` say what becomes of what the destination held
    (:func:`transfer.stage.stage`); the files removed are counted in ``stage.completed``.
    """
    if request.destination is None:
        raise InvalidInputError("an embedded staging needs a destination directory (nodes are the service's)")
    run = StagingRun(ledger, policy, requester, request)

    def planned(plan: Plan) -> None:
        run.on_plan(plan)
        if on_plan is not None:
            on_plan(plan)

    options = options or StagingOptions()
    try:
        # Connections: one per file thread plus one per part thread.
        connections = 2 * options.concurrency + 4
        source = open_source(request.source, connections, LABELS, tags_at_plan=policy.tags_at_plan)
        result = stage(
            source,
            Path(request.destination),
            options.transfer_config(),
            on_progress,
            planned,
            label_file_name=LABELS.file_name,
            label_gate=run.label_gate(source),
            replace=request.replace,
            sync=request.sync,
            on_listed=on_listed,
            key_filter=request.key_filter,
            # The same source for each copy process (small files on more than one core).
            source_recipe=source_recipe(
                request.source, connections, LABELS, tags_at_plan=policy.tags_at_plan
            ),
        )
    except PolicyDeniedError as exc:
        if not run.denied:  # refused at copy time, by an object's own label
            run.deny(exc.decision)
        raise
    except BaseException as exc:  # whatever it was, the trail says the staging failed
        run.failed(exc)
        raise
    run.completed(result)
    return result


@contextlib.contextmanager
def planned_source(
    source_url: str, on_listed: ListingCallback | None = None, key_filter: KeyFilter | None = None
) -> Iterator[Plan]:
    """The plan of ``source_url`` (the keys ``key_filter`` takes) as a staging makes it, read
    with the caller's own credentials and every own label read up front (one tagging request
    per S3 object), moving nothing; its spill file lasts as long as the block. The labels of a
    source in one place (``policy check``, ``ls``, ``du``): :func:`label_resolver` of the plan
    resolves each object's, and its ``label_files`` and ``label_files_above`` (or a decision's
    ``consulted``) say which label files were consulted."""
    refuse_credentials(source_url, "source URL")
    source = open_source(source_url, labels=LABELS, tags_at_plan=True)
    with tempfile.TemporaryDirectory(prefix="stagegate-plan-") as scratch:
        yield plan_dataset(source, Path(scratch) / "plan.jsonl", LABELS.file_name, on_listed, key_filter)


def check_policy(
    policy: Policy, source_url: str, key_filter: KeyFilter | None = None
) -> tuple[Plan, Decision]:
    """What the policy would decide on staging ``source_url`` (the keys ``key_filter`` takes),
    without moving a byte, with the label files consulted."""
    with planned_source(source_url, key_filter=key_filter) as plan:
        return plan, decide_plan(policy, plan, Zone.staging(), label_resolver(plan, policy))
