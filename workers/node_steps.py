"""The three steps of a service staging, as a node worker runs them: plan, copy a batch,
finalize a node's dataset.

Each step first claims its task in the ledger; a duplicate message (the broker redelivered,
the reconciler re-sent) finds the task done or running elsewhere and returns. Each step is
idempotent, so running one again after a crash is always safe. Errors never escape to
Celery: a step either finishes, gives its task back for a later attempt, or fails the staging
with a reason, and the ledger says which.
"""

import contextlib
import functools
import logging
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from stagegate.confinement import SourceNotPermittedError
from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.key_filters import KeyFilter
from stagegate.ledger import (
    CacheIntegrity,
    CopiedEntry,
    LabelFileRecord,
    LabelFiles,
    Ledger,
    ManifestEntry,
    Manifests,
    NodePortion,
    Nodes,
    RetryLaterError,
    StagingJob,
    StagingSteps,
    TaskKey,
    Tasks,
)
from stagegate.ledger.cached_files import CachedFiles
from stagegate.ledger.fanout import SOURCE, Fanout
from stagegate.ledger.label_quarantine import DatasetLabels
from stagegate.ledger.plan_shares import (
    PlanCut,
    PlanShares,
    Role,
    SharedPlan,
    ShareShape,
    placed_shapes,
    replicated,
)
from stagegate.ledger.staging_steps import Following
from stagegate.policies import Decision, LabelResolver, Policy, PolicyDeniedError, Zone
from stagegate.progress import ListingCallback
from stagegate.queues import Dispatcher
from stagegate.states import DatasetState
from stagegate.transfer import (
    BatchResult,
    ProgressCallback,
    SourceObject,
    copy_batch,
    plan_dataset,
    publish_batches,
    read_manifest,
)
from stagegate.transfer.copy_processes import SourceRecipe
from stagegate.transfer.dataset_source import ready_selection
from stagegate.transfer.errors import SourceChangedError, UnsafeDestinationError
from stagegate.transfer.label_sources import LabelFileAbove
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.plan import LabelFile, Plan, check_labels_before_ready
from stagegate.transfer.sealed import fingerprint, is_sealed, seal, snapshot, unseal
from stagegate.transfer.sources import Source
from stagegate.workers.batch_origins import BatchOrigins, copied_from_a_peer
from stagegate.workers.cache_takes import SharedFiles, held_on_node, recount_shared, take_from_cache
from stagegate.workers.confined_sources import check_confined, confined_source
from stagegate.workers.lease import LeaseKeeper, PlanShareLease, TaskCancelledError
from stagegate.workers.listing_progress import ListingRecorder
from stagegate.workers.metrics import WorkerMetrics
from stagegate.workers.owner_checks import OwnerChecker
from stagegate.workers.portions import split_plan
from stagegate.workers.settings import WorkerSettings
from stagegate.workers.staging import (
    LABELS,
    OwnLabelGate,
    decide_plan,
    decision_details,
    label_resolver,
    manifest_entries,
    resolver_of,
)
from stagegate.workers.views import NodeViews, sync_node_views

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Followers of a shared plan admitted in one transaction: bounded, since the audit chain's
# append lock is held from the first one's policy.allowed to the commit.
FOLLOW_BATCH = 50
# (node, share digest, source) -> the bytes of it other datasets on the node hold (_held_on)
HeldCache = dict[tuple[str, str, str], dict[str, int]]
# The ledger keeps the label files found above a source beside those in it, under the
# directory keys '..', '../..' (nearest first): no key of a dataset has a '..' segment.
ABOVE = ".."
# Errors no retry can fix: bad input, a refused destination, a source changed under us.
PERMANENT = (
    InvalidInputError,
    NotFoundError,
    PolicyDeniedError,
    SourceChangedError,
    SourceNotPermittedError,
    UnsafeDestinationError,
)
Step = Callable[["NodeContext", TaskKey], None]


def _object_of(e: ManifestEntry) -> SourceObject:
    """A manifest entry as the engine reads it from its source."""
    return SourceObject(
        key=e.key,
        size=e.size,
        revision=e.revision,
        version=e.version,
        mtime=e.mtime,
        checksum_algorithm=e.checksum_algorithm,
        label=e.own_label,
    )


def _linked_inodes(root: Path) -> set[int]:
    """The inodes of the files below ``root`` that have another name (delta staging's links)."""
    return {st.st_ino for _, st in snapshot(root) if stat.S_ISREG(st.st_mode) and st.st_nlink > 1}


def remove_sharing(ctx: "NodeContext", tree: Path, but: Sequence[str]) -> None:
    """Delete a dataset's tree moved out of the datasets; where it shares files with cached
    datasets (hard links), inside :meth:`NodeContext.shared_files`, so their fingerprints
    stay true to them once its names of those files are gone."""
    linked = _linked_inodes(tree) if tree.exists() else set()
    if not linked:
        unseal(tree)
        shutil.rmtree(tree, ignore_errors=True)
        return
    with ctx.shared_files(but) as guard:
        guard.touched |= linked
        unseal(tree)
        shutil.rmtree(tree, ignore_errors=True)


def _label_file_records(plan: Plan) -> Iterator[LabelFileRecord]:
    """What the ledger keeps of the plan's label files, for the copy and finalize steps."""
    for d, f in plan.label_files.items():
        o = f.object
        yield LabelFileRecord(d, o.key, o.size, o.revision, o.version, o.mtime, f.content)
    for depth, a in enumerate(plan.label_files_above, start=1):
        if a.content is not None:
            yield LabelFileRecord(
                "/".join([ABOVE] * depth), a.where, len(a.content), None, None, None, a.content
            )


def plan_reasons(decision: Decision) -> tuple[str, ...]:
    """The reasons a plan's decision gives: the requester sees the staging's reasons only, so
    they say where labels were looked for too."""
    return (*decision.reasons, *decision.consulted)


def _timed(step: Step) -> Step:
    """Time the step and count its outcome in the worker's metrics, if it claims its task."""

    @functools.wraps(step)
    def run(self: "NodeContext", key: TaskKey) -> None:
        with self.metrics.step(self.settings.node, key.kind):
            step(self, key)

    return run


@dataclass
class NodeContext:
    """What every step on this node needs; built once when the worker starts."""

    settings: WorkerSettings
    ledger: Ledger
    policy: Policy
    dispatcher: Dispatcher
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    # Asks whether pin owners are gone (None: no Kubernetes API, owned pins are kept).
    owner_checker: OwnerChecker | None = None

    def __post_init__(self) -> None:
        self.tasks = Tasks(self.ledger, self.settings.lease_seconds)
        self.stagings = StagingSteps(self.ledger, self.settings.lease_seconds)
        self.nodes = Nodes(self.ledger)
        self.manifests = Manifests(self.ledger)
        self.label_files = LabelFiles(self.ledger)
        self.integrity = CacheIntegrity(self.ledger, self.settings.lease_seconds)
        self.dataset_labels = DatasetLabels(self.ledger)
        self.plan_shares = PlanShares(
            self.ledger, self.settings.lease_seconds, self.settings.plan_fresh_seconds
        )
        # Held while a cached dataset is checked or moved aside: the scrub runs in its own thread.
        self.cache_lock = threading.Lock()
        self.cached_files = CachedFiles(self.ledger)
        self.owner = self.settings.owner
        self.views = NodeViews(self.settings.root) if self.settings.views else None
        self.fanout = Fanout(self.ledger, self.settings.fanout_readers, self.settings.fanout_per_holder)
        self.origins = BatchOrigins(self.fanout, self.settings.peer_secret)

    def send_ready(self, job_id: str, node: str | None = None) -> int:
        """Send the job's tasks (on ``node``, or all) that may run now (those this caller moved
        to queued; returns how many): a batch of a replicated staging that should come from a
        peer waits until a peer holds it verified."""
        ready = self.tasks.next_to_send(job_id, node)
        if not ready:
            return 0  # a hit, or a window still full: no transaction to mark nothing sent
        if any(k.kind == "copy" for k in ready):
            job = self.stagings.job(job_id)
            ready = self.fanout.sendable(ready, job.nodes, replicated(job.mode))
        keys = self.tasks.mark_sent(ready)
        return self.dispatcher.send(k.to_message() for k in keys)

    def sync_views(self) -> None:
        """Make the per-owner views on this node the ones its held stagings call for (if on)."""
        if self.views is not None:
            sync_node_views(self.ledger, self.settings.node, self.views)

    @contextlib.contextmanager
    def shared_files(self, but: Sequence[str] = ()) -> Iterator[SharedFiles]:
        """Under the cache lock: the ready datasets on this node (``but`` these) checked before
        the body changes links to their files, their fingerprints kept current after."""
        with self.cache_lock:
            guard = SharedFiles(self.cached_files, self.settings.node, self.settings.root / "datasets", but)
            try:
                yield guard
            finally:
                guard.refresh()
                if guard.touched:  # links came or went: shared bytes count once
                    recount_shared(self.cached_files, self.settings.node, self.settings.root / "datasets")

    def sweep_evictions(self) -> None:
        """Delete the datasets admission chose to evict on this node."""
        datasets = self.settings.root / "datasets"
        # Views first: an evicted dataset has no pin, so no view of it survives this, and its
        # space is not held on by a mount the pod may still see.
        self.sync_views()
        for eviction in self.nodes.claim_evictions(self.settings.node):
            digest, path = eviction.digest, eviction.path
            target = Path(path)
            if target.parent != datasets:  # never delete outside our own root
                log.error("refusing to evict %s: not under %s", path, datasets)
                continue
            # Renamed first, so a half-deleted tree never sits at a dataset's name.
            trash = datasets.parent / "trash" / f"{digest}.{self.owner.replace('/', '_')}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            # The state first: a READY left beside a missing dataset would vouch for nothing.
            state, trashed_state = state_dir_of(target), trash.with_name(trash.name + ".state")
            if state.exists():
                shutil.rmtree(trashed_state, ignore_errors=True)  # an eviction that died half way
                state.rename(trashed_state)
            if target.exists():
                target.chmod(0o755)  # sealed: a directory moved to another parent must be writable
                target.rename(trash)
            self.nodes.evicted(self.settings.node, digest)
            self.metrics.evicted(self.settings.node)
            remove_sharing(self, trash, [digest])
            shutil.rmtree(trashed_state, ignore_errors=True)
            log.info("evicted dataset %s from node %s", digest, self.settings.node)

    def source_of(self, job: StagingJob) -> AbstractContextManager[Source]:
        """The staging's source, as its requester may read it (checked again here: the API's
        check is not proof, and this node may be configured more strictly)."""
        return self.source_recipe(job)()

    def source_recipe(self, job: StagingJob) -> SourceRecipe:
        """What opens :meth:`source_of` (the same confinement, checked again) in a copy process."""
        return functools.partial(
            confined_source,
            job.source,
            self.settings.source_rules,
            job.actor,
            job.project,
            max_connections=2 * self.settings.concurrency + 4,
            labels=LABELS,
            tags_at_plan=self.policy.tags_at_plan,
        )

    def dataset_dir(self, job_id: str) -> tuple[str, Path, int, int]:
        """(digest, path, files, bytes) of the dataset this job writes on this node, checked to
        lie under this node's root."""
        dataset = self.nodes.written_by(self.settings.node, job_id)
        if dataset is None:
            raise NotFoundError(f"staging {job_id} writes no dataset on node {self.settings.node}")
        path = Path(dataset.path)
        if path.parent != self.settings.root / "datasets" or path.name != dataset.digest:
            raise UnsafeDestinationError(f"{path} is not a dataset directory of this node's root")
        return dataset.digest, path, dataset.files, dataset.bytes

    def _still_writing(self, job_id: str) -> bool:
        dataset = self.nodes.written_by(self.settings.node, job_id)
        return dataset is not None and dataset.state == DatasetState.WRITING

    def _planned_label_files(self, job_id: str) -> tuple[dict[str, LabelFile], tuple[LabelFileAbove, ...]]:
        """The label files the plan read, as the ledger recorded them: those in the source by
        directory, and those above it, nearest first."""
        inside: dict[str, LabelFile] = {}
        above: list[tuple[int, LabelFileAbove]] = []
        for r in self.label_files.of_job(self.stagings.job(job_id).plan_job):
            if r.directory.startswith(ABOVE):
                above.append((r.directory.count(ABOVE), LabelFileAbove(r.key, r.content)))
            else:
                obj = SourceObject(r.key, r.size, r.revision, r.version, r.mtime)
                inside[r.directory] = LabelFile(r.directory, obj, r.content)
        return inside, tuple(a for _, a in sorted(above, key=lambda pair: pair[0]))

    # -- error handling shared by the steps ------------------------------------------------

    def _give_back_or_fail(self, key: TaskKey, attempts: int, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, RetryLaterError) or (not isinstance(exc, PERMANENT) and attempts < MAX_ATTEMPTS):
            delay = min(30.0, 2.0**attempts)
            log.warning(
                "%s task of %s failed (attempt %d), retrying in %.0fs: %s",
                key.kind,
                key.job_id,
                attempts,
                delay,
                message,
            )
            self.metrics.outcome("retried")
            self.tasks.retry_later(key, self.owner, message, delay)
            return
        log.error("%s task of %s failed: %s", key.kind, key.job_id, message)
        self.metrics.outcome("failed")
        self.stagings.fail(key.job_id, f"{key.kind} on node {key.node or 'any'}: {message}")

    # -- the steps -----------------------------------------------------------------------------

    @_timed
    def plan(self, key: TaskKey) -> None:
        task = self.tasks.claim(key, self.owner)
        if task is None:
            return
        self.metrics.claimed()
        if not self.stagings.begin_planning(key.job_id):
            self.tasks.finish(key, self.owner)
            return
        try:
            self._plan(key)
        except Exception as exc:
            self._give_back_or_fail(key, task.attempts, exc)

    def _plan(self, key: TaskKey) -> None:
        job = self.stagings.job(key.job_id)
        # The requester's own right to read the source, checked for every request, whether it
        # plans or follows someone else's plan: sharing must never widen what a user reaches.
        check_confined(job.source, self.settings.source_rules, job.actor, job.project)
        share = self._share_key(job)
        taken = self.plan_shares.take(share, job.id, self.owner)
        if taken.role == Role.WAIT:
            log.info("staging %s waits for the plan of %s", job.id, taken.leader)
            return  # the task is queued again, woken when that plan is done
        if taken.role == Role.FOLLOW:
            assert taken.plan is not None
            self._follow(job, key, taken.plan)
            self._follow_others(job, share, taken.plan)
            return
        try:
            with (
                LeaseKeeper(self.tasks, key, self.owner),
                PlanShareLease(self.plan_shares, share, job.id, self.owner),
            ):
                shared = self._plan_afresh(job, key)
        except Exception:
            self.dispatcher.send(k.to_message() for k in self.plan_shares.abandon(share, job.id))
            raise
        # Followers now reuse it, and the requests waiting for it are sent on.
        self.dispatcher.send(k.to_message() for k in self.plan_shares.planned(share, shared))
        if shared.allowed:
            self._admit(job, key, shared)
        self._follow_others(job, share, shared)

    def _share_key(self, job: StagingJob) -> str:
        return self.plan_cut().key(job.request_part, job.mode, len(job.nodes))

    def plan_cut(self) -> PlanCut:
        """How this worker cuts and shares plans (the API follows them only if it agrees)."""
        return PlanCut(
            self.policy.version,
            self.settings.batch_max_bytes,
            self.settings.batch_max_files,
            self.settings.plan_fresh_seconds,
        )

    def _follow_others(self, done: StagingJob, share: str, plan: SharedPlan) -> None:
        """Take the plan tasks of the other stagings of the same request that wait in the
        queue and have them follow ``plan`` now, in this task: a burst of identical requests
        costs one broker round trip, not one each, and (``StagingSteps.follow_all``) one
        commit per batch of them, not a handful each. Each is claimed (a task another worker
        holds is left to it), checked against its own requester's rights, and decided and
        audited on its own; one that differs in anything planned is given back untouched."""
        waiting = self.stagings.not_yet_planned(done.source, but=done.id)
        for start in range(0, len(waiting), FOLLOW_BATCH):
            self._follow_batch(waiting[start : start + FOLLOW_BATCH], share, plan)

    def _follow_batch(self, job_ids: Sequence[str], share: str, plan: SharedPlan) -> None:
        claimed = self.tasks.claim_many([TaskKey(job_id, "plan", "", 0) for job_id in job_ids], self.owner)
        attempts = {key.job_id: n for key, n in claimed.items()}
        jobs = [job for job in self.stagings.jobs(list(attempts)) if job.id in attempts]
        for gone in set(attempts) - {job.id for job in jobs}:
            self.tasks.finish(TaskKey(gone, "plan", "", 0), self.owner)
        ours = []
        for job in jobs:
            key = TaskKey(job.id, "plan", "", 0)
            if self._share_key(job) != share:
                self.tasks.retry_later(key, self.owner, "", 0)  # its own plan: back to the queue
                continue
            try:
                check_confined(job.source, self.settings.source_rules, job.actor, job.project)
            except Exception as exc:
                self._give_back_or_fail(key, attempts[job.id], exc)
                continue
            ours.append(job)
        if not ours:
            return
        if plan.allowed:
            held: HeldCache = {}  # one look-up per node, not per follower
            following = [
                Following(job.id, self._portions(job, plan, held), self._details(job, plan)) for job in ours
            ]
            try:
                checks = self.stagings.follow_all(self.owner, plan, following)
            except Exception as exc:  # a quarantined copy, no room...: each on its own, as below
                log.info("batch of %d followers of %s admitted one by one: %s", len(ours), plan.job_id, exc)
            else:
                self.dispatcher.send(k.to_message() for k in checks)
                for job in ours:  # a node it must copy to: its first batches (none for hits)
                    self.send_ready(job.id)
                return
        for job in ours:
            key = TaskKey(job.id, "plan", "", 0)
            try:
                if self.stagings.begin_planning(job.id):
                    self._follow(job, key, plan)
                else:
                    self.tasks.finish(key, self.owner)
            except Exception as exc:
                self._give_back_or_fail(key, attempts[job.id], exc)

    def _plan_afresh(self, job: StagingJob, key: TaskKey) -> SharedPlan:
        """List the source, read its labels, record the manifest and ask the policy; a denial is
        recorded here. Returns the plan as followers share it."""
        with (
            self.source_of(job) as source,
            tempfile.TemporaryDirectory(prefix="stagegate-plan-") as scratch,
        ):
            listed = ListingRecorder(self.stagings, job.id)
            plan, resolver, decision = self.list_and_decide(job, source, Path(scratch), listed)
            self.manifests.clear(job.id)
            self.manifests.add(job.id, manifest_entries(plan, resolver))
            self.label_files.replace(job.id, _label_file_records(plan))
            self.stagings.record_plan(job.id, plan.digest, plan.files, plan.bytes, self.policy.version)
            details = decision_details(decision)
            reasons = plan_reasons(decision)
            shapes: list[ShareShape] = []
            if decision.allowed:
                config = self.settings.transfer_config()
                portions = split_plan(
                    plan, job.nodes, job.mode or "replicate", config.batch_max_bytes, config.batch_max_files
                )
                distinct = portions[:1] if replicated(job.mode) else portions
                shapes = [ShareShape(p.digest, p.files, p.bytes, tuple(p.batches)) for p in distinct]
        shared = SharedPlan(
            job.id,
            plan.digest,
            plan.files,
            plan.bytes,
            self.policy.version,
            decision.allowed,
            tuple(reasons),
            details,
            tuple(shapes),
        )
        if not decision.allowed:
            self.stagings.deny(job.id, key, self.owner, reasons, details)
        log.info("staging %s planned: %d files, %d bytes", job.id, plan.files, plan.bytes)
        return shared

    def list_and_decide(
        self, job: StagingJob, source: Source, scratch: Path, listed: ListingCallback | None = None
    ) -> tuple[Plan, LabelResolver, Decision]:
        """List ``job``'s source (its entries spilled under ``scratch``), read its labels and
        ask the policy: what a plan and the background check of a shared plan both do."""
        key_filter = KeyFilter(job.include, job.exclude)
        plan = plan_dataset(source, scratch / "plan.jsonl", LABELS.file_name, listed, key_filter)
        resolver = label_resolver(plan, self.policy)
        return plan, resolver, decide_plan(self.policy, plan, Zone.staging(), resolver)

    def _follow(self, job: StagingJob, key: TaskKey, plan: SharedPlan) -> None:
        """Use another staging's fresh plan: no listing, no label read, no row per object. The
        decision is that plan's (same source, same policy version), audited for this staging."""
        self.stagings.follow_plan(job.id, plan)
        if not plan.allowed:
            self.stagings.deny(
                job.id, key, self.owner, plan.reasons, {**plan.details, "plan_of": plan.job_id}
            )
            return
        self._admit(job, key, plan)

    @staticmethod
    def _details(job: StagingJob, plan: SharedPlan) -> dict[str, object]:
        """What the staging's decision records of the plan: whose plan it followed, if not its own."""
        return {**plan.details, "plan_of": plan.job_id} if plan.job_id != job.id else plan.details

    def _portions(
        self, job: StagingJob, plan: SharedPlan, held: HeldCache | None = None
    ) -> list[NodePortion]:
        """The plan's shares on the staging's own nodes: the whole on each (replicate), or one each.
        ``held`` keeps what each node holds of a share across the followers of one batch."""
        held = {} if held is None else held
        placed = placed_shapes(plan, job.mode, job.nodes)
        for node, s in placed:
            if (node, s.digest, job.source) not in held:
                held[node, s.digest, job.source] = self._held_on(node, s, plan.job_id, job.source)
        return [
            NodePortion(node, s.digest, s.files, s.bytes, s.batches, held[node, s.digest, job.source])
            for node, s in placed
        ]

    def _admit(self, job: StagingJob, key: TaskKey, plan: SharedPlan) -> None:
        portions, details = self._portions(job, plan), self._details(job, plan)
        outcome = self.stagings.admit(job.id, key, self.owner, portions, details)
        log.info("staging %s admitted: %s", job.id, outcome.state)
        self.send_ready(job.id)

    def _held_on(self, node: str, shape: ShareShape, plan_job: str, source_url: str) -> dict[str, int]:
        """The bytes of ``shape`` that ready datasets on ``node`` already hold (delta staging), by
        the dataset they would be taken from; nothing to look up where the node holds no other
        dataset, or holds this one (a hit)."""
        ready = {d.digest for d in self.cached_files.ready_on(node)}
        if not ready or shape.digest in ready:
            return {}
        batches = (
            [
                (_object_of(e), e.source_checksum)
                for e in self.manifests.entries(plan_job, first=b.key_from, through=b.key_to)
            ]
            for b in shape.batches
        )
        return held_on_node(self.cached_files, node, shape.digest, batches, source_url)

    @_timed
    def copy(self, key: TaskKey) -> None:
        task = self.tasks.claim(key, self.owner)
        if task is None:
            return
        self.metrics.claimed()
        try:
            self.sweep_evictions()
            job = self.stagings.job(key.job_id)
            digest, path, _, _ = self.dataset_dir(job.id)
            if not self._still_writing(job.id):
                self.tasks.finish(key, self.owner)  # never write into a ready (sealed) dataset
                return
            entries = list(self.manifests.entries(job.plan_job, first=task.key_from, through=task.key_to))
            objects = [_object_of(e) for e in entries]
            # Only a replicated staging's nodes hold the same batches: a shard's batch idx on
            # another node is another key range.
            fanned = replicated(job.mode) and len(job.nodes) > 1
            config = self.settings.peer_transfer_config()
            with LeaseKeeper(self.tasks, key, self.owner) as lease:
                progress = lease.on_progress
                from_peer = None
                if fanned:
                    from_peer = self.origins.copy_from_peers(key, entries, objects, path, config, progress)
                taken_bytes = None  # a batch from a peer takes nothing from this node's cache
                if from_peer is None:
                    checksums = [e.source_checksum for e in entries]
                    copied, taken_bytes = self._copy_from_source(
                        job, key, digest, objects, checksums, path, progress
                    )
                    from_peer = copied, SOURCE
                result, origin = from_peer
            self.metrics.bytes_copied(self.settings.node, 0 if result.already_done else result.bytes_copied)
            if fanned and origin == SOURCE and self.settings.peer_url is not None:
                # What a peer's copy of this batch is checked against, recorded before the batch
                # counts as done (and so before any peer is sent to copy it from here).
                self.manifests.record_copies(
                    job.plan_job,
                    (CopiedEntry(r.key, r.blake3, r.verification.value, r.label) for r in result.records),
                )
            if not self.tasks.finish(key, self.owner, result.files, result.bytes, origin, taken_bytes):
                self.metrics.outcome("cancelled")
                return  # cancelled meanwhile; the batch is on disk all the same
            if fanned:
                self.send_ready(key.job_id)  # the other nodes may now copy this batch from here
        except TaskCancelledError:
            self.metrics.outcome("cancelled")
            log.info("%s batch %d of %s stopped: cancelled", key.node, key.idx, key.job_id)
            return
        except Exception as exc:
            self._give_back_or_fail(key, task.attempts, exc)
            return
        self.send_ready(key.job_id, key.node)

    def _copy_from_source(
        self,
        job: StagingJob,
        key: TaskKey,
        digest: str,
        objects: list[SourceObject],
        checksums: list[str | None],
        path: Path,
        on_progress: ProgressCallback,
    ) -> tuple[BatchResult, int]:
        """The batch copied, its files a dataset cached here holds taken from it; and the bytes
        so taken (usage counts them as from the cache, whichever way they were taken)."""
        label_files, above = self._planned_label_files(job.id)
        resolver = resolver_of(label_files, above, self.policy)
        with self.source_of(job) as source:
            # An object whose own label (read as it is opened) the policy refuses fails the
            # staging (PolicyDeniedError is permanent) with nothing of it written.
            gate = OwnLabelGate(self.policy, resolver, Zone.staging(), source.labels_listed)
            # Files a dataset cached on this node already holds come from it, verified.
            taken = take_from_cache(
                self.cached_files,
                self.shared_files,
                self.settings.node,
                digest,
                path,
                list(zip(objects, checksums, strict=True)),
                source,
                job.source,
                gate,
                threads=2 * self.settings.concurrency + 4,  # as many as the source's connections
            )
            if taken.records:
                log.info(
                    "batch %d of %s on %s: %d files (%d bytes) taken from the node's cache %s",
                    key.idx, job.id, key.node, len(taken.records), taken.bytes, taken.methods,
                )  # fmt: skip
            copied = copy_batch(
                source,
                path,
                key.idx,
                objects,
                self.settings.transfer_config(),
                on_progress=on_progress,
                label_file_name=LABELS.file_name,
                label_files=label_files,
                label_gate=gate,
                taken=taken.records,
                source_recipe=self.source_recipe(job),
            )
            return copied, taken.bytes

    @_timed
    def finalize(self, key: TaskKey) -> None:
        task = self.tasks.claim(key, self.owner)
        if task is None:
            return
        self.metrics.claimed()
        try:
            job = self.stagings.job(key.job_id)
            digest, path, files, nbytes = self.dataset_dir(job.id)
            if not self._still_writing(job.id):
                self.tasks.finish(key, self.owner)
                return
            if is_sealed(path):
                unseal(path)  # sealed by a run that died before the ledger heard: publish again
            copies = [t for t in self.tasks.of_job(job.id) if t.key.kind == "copy" and t.key.node == key.node]
            batches = len(copies)
            path.mkdir(parents=True, exist_ok=True)  # an empty share has no batch to create it
            # Each batch checked the label files as it began: one rewritten while the last
            # batch copied is caught here, before READY (LabelChangedError fails the staging).
            label_files, above = self._planned_label_files(job.id)
            with self.source_of(job) as source:
                check_labels_before_ready(
                    source,
                    label_files,
                    LABELS.file_name,
                    (
                        e.key
                        for t in copies
                        for e in self.manifests.entries(job.plan_job, first=t.key_from, through=t.key_to)
                    ),
                    above,
                )
            publish_batches(
                path,
                source_url=job.source,
                digest=digest,
                batches=batches,
                files=files,
                bytes=nbytes,
                selection=ready_selection(job.source, job.include, job.exclude),
            )
            # A file copied from a peer was checked against the BLAKE3 its source reader recorded,
            # with how that reader verified it: the manifest keeps the reader's word for it.
            self.manifests.record_copies(
                job.plan_job,
                (
                    CopiedEntry(r.key, r.blake3, r.verification.value, r.label)
                    for r in read_manifest(path)
                    if not copied_from_a_peer(r)
                ),
            )
            # Read-only to jobs from here on, and fingerprinted: a cache hit checks the copy
            # against it before anyone is handed this directory again.
            # Under the cache lock: a take from the cache into another staging links files this
            # one may share, which must wait until this fingerprint is on record.
            with self.cache_lock:
                seal(path)
                pinning = self.stagings.dataset_ready(job.id, key, self.owner, fingerprint(path))
                if _linked_inodes(path):  # it shares files: the node's used space counts them once
                    recount_shared(self.cached_files, self.settings.node, self.settings.root / "datasets")
        except Exception as exc:
            self._give_back_or_fail(key, task.attempts, exc)
            return
        for job_id in pinning:
            self.stagings.complete_if_ready(job_id)
