"""The staging step: plan, ask the policy, copy, and record every crossing in the ledger.

Every state change goes through :class:`StagingRun`'s one ``_audit`` method, so the trail
holds ``stage.requested``, then ``policy.allowed`` or ``policy.denied``, then
``stage.completed`` or ``stage.failed`` for every staging, whatever went wrong. The
embedded client calls :func:`run_staging` in-process; the service's tasks will call the
same steps.
"""

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stagegate.actions import AuditAction
from stagegate.durability import Durability
from stagegate.errors import InvalidInputError
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
from stagegate.transfer.sources import Source
from stagegate.urls import refuse_credentials

__all__ = [
    "OwnLabelGate",
    "Requester",
    "StagingOptions",
    "check_policy",
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

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
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


def label_resolver(plan: Plan, policy: Policy) -> LabelResolver:
    """The resolver for a plan's objects, from the label files it read, ordered by the
    policy's levels (an own label may only raise its directory's)."""
    return LabelResolver({d: f.content for d, f in plan.label_files.items()}, policy.levels)


def manifest_entries(plan: Plan, resolver: LabelResolver) -> Iterator[ManifestEntry]:
    """The ledger's manifest rows for ``plan``: each object with its resolved label, and what
    a node worker needs to read it again without listing (mtime, checksum algorithm, own label)."""
    for o in plan.entries():
        yield ManifestEntry(
            key=o.key,
            size=o.size,
            revision=o.revision,
            version=o.version,
            label=resolver.resolve(o.key, o.label).label,
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


def decide_plan(policy: Policy, plan: Plan, zone: Zone, resolver: LabelResolver) -> Decision:
    """The policy's decision on every object of ``plan``, streamed from its spill file."""
    return policy.decide(zone, ((o.key, resolver.resolve(o.key, o.label).label) for o in plan.entries()))


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
        self._audit(AuditAction.STAGE_REQUESTED)

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
        self._manifests.add(self.job.id, manifest_entries(plan, resolver))
        decision = decide_plan(self._policy, plan, Zone.staging(), resolver)
        details = {"offending": decision.offending_count, "highest_label": decision.highest_label}
        if not decision.allowed:
            self.deny(decision)
            raise PolicyDeniedError(decision)
        self._audit(AuditAction.POLICY_ALLOWED, decision="allow", details=details)
        self._update_job(plan, StagingState.TRANSFERRING)

    def deny(self, decision: Decision) -> None:
        """Record the policy's refusal: of the plan, or of an object whose own label, read as
        it was opened, raised its label above what the zone accepts (nothing of it written)."""
        assert self._plan is not None
        details = {"offending": decision.offending_count, "highest_label": decision.highest_label}
        self._audit(AuditAction.POLICY_DENIED, decision="deny", reasons=decision.reasons, details=details)
        self._update_job(self._plan, StagingState.DENIED)
        self.denied = True

    def label_gate(self, source: Source) -> LabelGate:
        """The gate for ``source``'s objects, once the plan is known (the resolver is the plan's)."""

        def gate(obj: SourceObject, own: str | None) -> str | None:
            assert self._resolver is not None  # the engine opens nothing before the plan
            return OwnLabelGate(self._policy, self._resolver, Zone.staging(), source.labels_listed)(obj, own)

        return gate

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
        source = open_source(
            request.source,
            max_connections=2 * options.concurrency + 4,
            labels=LABELS,
            tags_at_plan=policy.tags_at_plan,
        )
        result = stage(
            source,
            Path(request.destination),
            options.transfer_config(),
            on_progress,
            planned,
            label_file_name=LABELS.file_name,
            label_gate=run.label_gate(source),
            on_listed=on_listed,
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
def planned_source(source_url: str, on_listed: ListingCallback | None = None) -> Iterator[Plan]:
    """The plan of ``source_url`` as a staging makes it, read with the caller's own credentials
    and every own label read up front (one tagging request per S3 object), moving nothing;
    its spill file lasts as long as the block."""
    refuse_credentials(source_url, "source URL")
    source = open_source(source_url, labels=LABELS, tags_at_plan=True)
    with tempfile.TemporaryDirectory(prefix="stagegate-plan-") as scratch:
        yield plan_dataset(source, Path(scratch) / "plan.jsonl", LABELS.file_name, on_listed)


def check_policy(policy: Policy, source_url: str) -> tuple[Plan, Decision]:
    """What the policy would decide on staging ``source_url``, without moving a byte."""
    with planned_source(source_url) as plan:
        return plan, decide_plan(policy, plan, Zone.staging(), label_resolver(plan, policy))
