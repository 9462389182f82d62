"""The egress step: select checkpoints, classify them, ask the policy, copy, verify, then
(only then) delete the unselected ones; every step audited.

A checkpoint's label only rises: the highest of its own, the nearest ``.classification`` up
to the run root, and its lineage from the requester's own stagings under ``--job`` (see
:mod:`workers.egress_labels`); a recorded declassification is the only way down. A
checkpoint with no label at all is denied, with the fix in the reason.

Audit events (contract: /work/notes/spec5.md): ``egress.requested``, ``policy.allowed`` or
``policy.denied``, ``egress.completed`` or ``egress.failed``, and one ``checkpoint.deleted``
per deleted checkpoint. The embedded CLI calls :func:`run_egress` in-process; a node worker
calls :meth:`EgressRun.resume` for an egress the API recorded (it wrote ``egress.requested``).
On the service, the worker reads only ``<runs root>/<user>/`` and writes a path destination
only below ``<egress root>/<user>/`` (:func:`check_user_run`, :func:`check_user_destination`).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagegate.actions import AuditAction
from stagegate.checkpoints import RunScan, Selection, best_mode, explain, scan_run
from stagegate.checkpoints import select as select_checkpoints
from stagegate.errors import InvalidInputError
from stagegate.ledger import AuditTrail, Jobs, Ledger, NewEvent, TaskKey, Tasks
from stagegate.ledger.egresses import Egresses
from stagegate.paths import is_within, plain_segments
from stagegate.policies import UNCLASSIFIED, Decision, Policy, PolicyDeniedError, Zone
from stagegate.progress import ProgressCallback
from stagegate.requests import EgressRequest
from stagegate.states import EgressState
from stagegate.transfer.egress import (
    EgressConfig,
    EgressResult,
    delete_checkpoint,
    egress,
    local_path,
    validate_destination,
)
from stagegate.workers.egress_labels import CheckpointLabel, Classification, LabelScope, classify
from stagegate.workers.lease import LeaseKeeper
from stagegate.workers.staging import Requester

if TYPE_CHECKING:
    from stagegate.workers.node_steps import NodeContext

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointLabel",
    "EgressOptions",
    "EgressOutcome",
    "EgressPreview",
    "EgressRun",
    "check_selection",
    "classify",
    "egress_step",
    "preview_egress",
    "run_egress",
]

NO_LABEL_FIX = (
    "label it with `setfattr -n user.classification -v public PATH` or a .classification file "
    "inside it, or pass --job with the job reference the training run staged its data under"
)


@dataclass(frozen=True, slots=True)
class EgressOptions:
    """The tunables a caller may set (``--concurrency``, ``--part-size``, ...); plain values."""

    concurrency: int = 8
    part_size: int = 8 << 20
    multipart_threshold: int = 8 << 20
    bandwidth_limit: int | None = None

    def egress_config(self) -> EgressConfig:
        return EgressConfig(
            concurrency=self.concurrency,
            part_size=self.part_size,
            multipart_threshold=self.multipart_threshold,
            bandwidth_limit=self.bandwidth_limit,
        )


def normalized(request: EgressRequest) -> EgressRequest:
    """``request`` with ``file:///x`` written ``/x``: the policy's prefixes name paths plainly,
    and ``file:///secret`` must not slip past a rule for ``/``."""
    path = local_path(request.destination)
    return replace(request, destination=str(path)) if path is not None else request


def check_destination(request: EgressRequest) -> None:
    """Refuse a destination egress cannot write or the policy cannot place, before anything is
    recorded (the request's own rules were checked when it was made)."""
    validate_destination(request.destination)
    Zone.egress(request.destination)


def check_selection(request: EgressRequest) -> None:
    """What can be refused without the run directory: ``best`` naming a metric whose
    direction is unknown, without a ``mode`` (the service's client asks before submitting;
    here selection itself refuses it, after checking the metric exists)."""
    if request.best is not None:
        best_mode(request.best, request.mode)


def decide(policy: Policy, destination: str, classification: Classification, job_ref: str | None) -> Decision:
    """The policy's decision over every selected checkpoint's label; a checkpoint with no
    label at all, or a job reference that is someone else's, is refused with the fix."""
    labels = classification.labels
    if classification.lineage_refused is not None:
        return _refused(policy, destination, len(labels), [classification.lineage_refused])
    unlabelled = [c for c in labels if c.origin == "none"]
    if unlabelled:
        lineage = (
            f"you staged no dataset under job reference {job_ref!r}" if job_ref else "no --job was given"
        )
        return _refused(
            policy,
            destination,
            len(labels),
            [
                f"checkpoint {c.name} has no label and no lineage ({lineage}): {NO_LABEL_FIX}"
                for c in unlabelled
            ],
        )
    return policy.decide(
        Zone.egress(destination), ((f"checkpoint {c.name} ({c.origin})", c.label) for c in labels)
    )


def _refused(policy: Policy, destination: str, count: int, reasons: list[str]) -> Decision:
    rule = policy.rule_for(destination)
    zone = Zone.egress(destination)
    return Decision(
        allowed=False,
        policy_version=policy.version,
        zone=zone,
        max_level=policy.max_level(zone),
        egress_rule=None if rule is None else rule.prefix,
        highest_label=UNCLASSIFIED,
        reasons=tuple(reasons[:20]),
        offending_count=len(reasons) if len(reasons) > 1 else count,
        object_count=count,
    )


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressPreview:
    """What ``--dry-run`` shows: the selection, the entries discovery skipped, labels, decision."""

    selection: Selection
    scan: RunScan
    labels: list[CheckpointLabel]
    decision: Decision

    @property
    def skipped(self) -> dict[str, str]:
        """Entries that looked like checkpoints but were left out -> why."""
        return dict(self.scan.skipped)

    def explanation(self) -> list[str]:
        """The selection in words: what would be chosen and why, left, skipped, noted."""
        return explain(self.selection, self.scan)


@dataclass
class EgressOutcome:
    job_id: str
    selection: Selection
    labels: list[CheckpointLabel]
    decision: Decision
    result: EgressResult | None = None
    deleted: list[tuple[str, int]] = field(default_factory=list)


def select_request(request: EgressRequest) -> Selection:
    return _select_in(scan_run(Path(request.run_dir)), request)


def _select_in(scan: RunScan, request: EgressRequest) -> Selection:
    return select_checkpoints(
        scan.checkpoints,
        latest=request.latest,
        best=request.best,
        mode=request.mode,
        names=request.names,
    )


def label_scope(request: EgressRequest, requester: Requester, label_root: Path | None) -> LabelScope:
    """Where ``request``'s labels come from: ``label_root`` (default: the run directory itself)."""
    run_dir = Path(request.run_dir)
    return LabelScope(
        run_dir=run_dir,
        label_root=label_root or run_dir,
        actor=requester.actor,
        project=request.project,
        node=request.node,
        job_ref=request.job_ref,
    )


def preview_egress(
    ledger: Ledger,
    policy: Policy,
    request: EgressRequest,
    requester: Requester,
    label_root: Path | None = None,
) -> EgressPreview:
    """What an egress would select and what the policy would decide; records and moves nothing."""
    request = normalized(request)
    check_destination(request)
    scan = scan_run(Path(request.run_dir))
    selection = _select_in(scan, request)
    found = classify(ledger, policy, label_scope(request, requester, label_root), selection.selected)
    decision = decide(policy, request.destination, found, request.job_ref)
    return EgressPreview(selection, scan, found.labels, decision)


class EgressRun:
    """One egress, from request to completed (or denied, or failed), recorded as it goes."""

    def __init__(
        self,
        ledger: Ledger,
        policy: Policy,
        requester: Requester,
        request: EgressRequest,
        job_id: str | None = None,
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._requester = requester
        self._request = request
        self._trail = AuditTrail(ledger)
        self._jobs = Jobs(ledger)
        self._files = 0
        self._bytes = 0
        if job_id is None:
            self.job_id = self._jobs.create(
                kind="egress",
                actor=requester.actor,
                role=requester.role,
                source=request.source,
                destination=request.destination,
                job_ref=request.job_ref,
                state=EgressState.RUNNING,
                policy_version=policy.version,
            ).id
            self._audit(AuditAction.EGRESS_REQUESTED, details=self._request.selection_details())
        else:  # the API recorded the job and wrote egress.requested
            self.job_id = job_id
            self._jobs.update(job_id, state=EgressState.RUNNING, policy_version=policy.version)

    def _audit(self, action: str, **fields: Any) -> None:
        self._trail.append(
            NewEvent(
                actor=self._requester.actor,
                role=self._requester.role,
                action=action,
                source=self._request.source,
                destination=self._request.destination,
                job_id=self.job_id,
                job_ref=self._request.job_ref,
                policy_version=self._policy.version,
                files=fields.pop("files", self._files),
                bytes=fields.pop("bytes", self._bytes),
                **fields,
            )
        )

    def decide(
        self, selection: Selection, label_root: Path | None = None
    ) -> tuple[list[CheckpointLabel], Decision]:
        """Classify the selected checkpoints and ask the policy; raises PolicyDeniedError (audited)."""
        scope = label_scope(self._request, self._requester, label_root)
        found = classify(self._ledger, self._policy, scope, selection.selected)
        labels = found.labels
        decision = decide(self._policy, self._request.destination, found, self._request.job_ref)
        self._files = 0
        self._bytes = sum(c.size for c in selection.selected)
        details = {
            "selected": [c.name for c in selection.selected],
            "labels": {c.name: c.to_details() for c in labels},
            "declassified": {c.name: c.declassified for c in labels if c.declassified is not None},
            "notes": [note for c in labels for note in c.notes],
            "highest_label": decision.highest_label,
            "offending": decision.offending_count,
            "egress_rule": decision.egress_rule,
        }
        if not decision.allowed:
            self._audit(AuditAction.POLICY_DENIED, decision="deny", reasons=decision.reasons, details=details)
            self._jobs.update(
                self.job_id, state=EgressState.DENIED, bytes=self._bytes, error="; ".join(decision.reasons)
            )
            raise PolicyDeniedError(decision)
        self._audit(AuditAction.POLICY_ALLOWED, decision="allow", details=details)
        return labels, decision

    def completed(self, selection: Selection, result: EgressResult) -> None:
        self._files, self._bytes = len(result.files), result.bytes
        details = {
            "selected": [c.name for c in selection.selected],
            "checksums": result.checksums,
            "files_present": result.files_present,  # verified there by an earlier, interrupted run
            "project": self._request.project,
            "node": self._request.node,
        }
        self._audit(AuditAction.EGRESS_COMPLETED, details=details)
        self._jobs.update(self.job_id, state=EgressState.COMPLETED, files=self._files, bytes=self._bytes)

    def deleted(self, name: str, held: int) -> None:
        self._audit(
            AuditAction.CHECKPOINT_DELETED,
            files=0,
            bytes=held,
            details={"name": name, "bytes": held, "path": str(Path(self._request.run_dir) / name)},
        )

    def failed(self, error: BaseException) -> None:
        reason = str(error) or type(error).__name__
        self._audit(AuditAction.EGRESS_FAILED, reasons=(reason,), details={"error": type(error).__name__})
        self._jobs.update(self.job_id, state=EgressState.FAILED, error=reason)


def run_egress(
    ledger: Ledger,
    policy: Policy,
    requester: Requester,
    request: EgressRequest,
    options: EgressOptions | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    job_id: str | None = None,
    on_selected: Callable[[Selection], None] | None = None,
    s3_client: Any = None,
    label_root: Path | None = None,
) -> EgressOutcome:
    """Run ``request`` in this process: select, decide, copy and verify, then delete.

    Raises :class:`PolicyDeniedError` (nothing moved; audited) when the policy refuses, and the
    copy's own errors when it fails (audited as ``egress.failed``; nothing deleted).
    ``label_root``: the highest directory whose ``.classification`` counts (default: the run
    directory).
    """
    request = normalized(request)
    check_destination(request)
    run = EgressRun(ledger, policy, requester, request, job_id)
    try:
        selection = select_request(request)
    except BaseException as exc:
        run.failed(exc)
        raise
    if on_selected is not None:
        on_selected(selection)
    try:
        labels, decision = run.decide(selection, label_root)  # raises PolicyDeniedError, audited
    except PolicyDeniedError:
        raise
    except BaseException as exc:  # a label that cannot be read: fail closed, audited
        run.failed(exc)
        raise
    outcome = EgressOutcome(run.job_id, selection, labels, decision)
    try:
        outcome.result = egress(
            request.run_dir,
            selection.selected,
            request.destination,
            (options or EgressOptions()).egress_config(),
            on_progress,
            client=s3_client,
            key_filter=request.key_filter if request.include or request.exclude else None,
        )
    except BaseException as exc:
        run.failed(exc)
        raise
    run.completed(selection, outcome.result)
    if request.delete_unselected:
        # Every selected file is verified at the destination (egress() returned): only now.
        for checkpoint in selection.unselected:
            held = delete_checkpoint(request.run_dir, checkpoint.name)
            run.deleted(checkpoint.name, held)
            outcome.deleted.append((checkpoint.name, held))
    return outcome


# -- on a node worker ---------------------------------------------------------------------------


def check_user_run(allowed: Path, run_dir: str) -> None:
    """Refuse a service egress of anything but the requester's own runs on this node: the
    worker reads with its own permissions, so without this any user could ship any path."""
    try:
        path = plain_segments(run_dir)
    except InvalidInputError:
        path = ()  # '..', '.' or '//' in it: not a plain path, so not one of theirs
    root = plain_segments(str(allowed))
    if not is_within(path, root) or path == root:
        raise PermissionError(
            f"{run_dir} is not one of your runs on this node: the service egresses only from "
            f"{allowed}/<run> (the node's runs root, one directory per user)"
        )


def check_user_destination(allowed: Path, destination: str) -> None:
    """Refuse a service egress to a path outside the requester's own egress root on this node:
    the worker writes with its own permissions, so without this any user could write into the
    node cache, another user's runs, or /etc. S3 destinations are the policy's to govern."""
    path = local_path(destination)
    if path is None:
        return
    if not is_within(plain_segments(str(path)), plain_segments(str(allowed))):
        raise PermissionError(
            f"{destination} is outside your egress root on this node: the service writes a path "
            f"destination only below {allowed}/ (the node's egress root, one directory per user)"
        )


def egress_step(ctx: "NodeContext", key: TaskKey) -> None:
    """Run the service egress ``key.job_id`` on this node (task kind ``egress``).

    The worker reads the run directory with its own permissions: the request must name an
    absolute path, and no symlinked component is followed (see :class:`transfer.endpoints.run_dir.RunDir`).
    A failure is final (audited as ``egress.failed``); a worker that dies mid-copy loses its
    lease and the reconciler sends the task again, which keeps the files already verified at
    the destination (same size and checksum) and sends the rest.
    """
    task = ctx.tasks.claim(key, ctx.owner)
    if task is None:
        return
    egresses = Egresses(ctx.ledger, ctx.settings.lease_seconds)
    try:
        job = Jobs(ctx.ledger).get(key.job_id)
        request = egresses.params(key.job_id)
        if request.node != ctx.settings.node:
            raise InvalidInputError(
                f"egress {key.job_id} is for node {request.node}, not {ctx.settings.node}"
            )
        runs = ctx.settings.user_runs(job.actor)
        check_user_run(runs, request.run_dir)
        check_user_destination(ctx.settings.user_egress(job.actor), normalized(request).destination)
        options = EgressOptions(concurrency=ctx.settings.concurrency)
        with LeaseKeeper(ctx.tasks, key, ctx.owner) as lease:
            run_egress(
                ctx.ledger,
                ctx.policy,
                Requester(actor=job.actor, role=job.role),
                request,
                options,
                on_progress=lease.on_progress,
                job_id=key.job_id,
                label_root=runs,  # a .classification anywhere from the user's runs dir down counts
            )
    except PolicyDeniedError:
        ctx.tasks.finish(key, ctx.owner)  # denied and audited; nothing more to do
        return
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        log.error("egress %s failed: %s", key.job_id, message)
        egresses.fail(key.job_id, message, type(exc).__name__)  # unless the run audited it already
        with ctx.ledger.sessions.begin() as session:
            Tasks.fail_in(session, key, message)
        return
    ctx.tasks.finish(key, ctx.owner)
