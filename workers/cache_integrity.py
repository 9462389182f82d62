"""A node's cache, kept honest by its worker: each cache hit is checked against the
fingerprint recorded when the dataset was sealed, a background scrub re-hashes cached
datasets against the ledger's manifest, and a copy found altered is moved aside
(quarantined) and copied afresh.

Only this node's worker can look at its disk, so these run here; the ledger
(:mod:`ledger.cache_integrity`) records what they find. Moving a copy aside always comes
before the ledger hears of it: a crash in between leaves a dataset missing (found and copied
again), never an altered one under a dataset's name that a fresh copy could trust.
"""

import logging
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from stagegate.ledger import BatchRange, ManifestEntry, RetryLaterError, TaskKey
from stagegate.states import DatasetState
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of
from stagegate.transfer.sealed import file_hashes, fingerprint, unseal
from stagegate.transfer.throttle import BandwidthLimiter
from stagegate.workers.node_steps import NodeContext, remove_sharing

log = logging.getLogger(__name__)

SCRUB_IDLE_S = 5.0
# Other stagings' hits one check confirms in one transaction (each still audited on its own):
# bounded, since the audit chain's append lock is held from the first stage.completed to the commit.
CONFIRM_BATCH = 50
FINGERPRINT_CHANGED = (
    "fingerprint: the inode, size, mode, mtime or ctime of some entry differs from what was "
    "recorded when the dataset was sealed"
)
# An older stagegate kept the state inside the dataset, where a job would see it as data.
LEGACY_LAYOUT = f"staged by an older stagegate: its state ({LEGACY_STATE_DIR}/) is inside the dataset"


def quarantine_dir(ctx: NodeContext) -> Path:
    return ctx.settings.root / "quarantine"


def _own_dataset(ctx: NodeContext, path: str) -> Path:
    target = Path(path)
    if target.parent != ctx.settings.root / "datasets":
        raise RetryLaterError(f"{path} is not a dataset directory of this node's root")
    return target


def move_aside(ctx: NodeContext, path: Path, digest: str) -> str | None:
    """Move an altered copy out of the datasets, its state beside it too (its manifest and
    READY vouch for the copy as it was); where the copy went, or None if it was not there."""
    state = state_dir_of(path)
    if not path.exists():
        shutil.rmtree(state, ignore_errors=True)
        return None
    target = quarantine_dir(ctx) / f"{digest}.{uuid.uuid4().hex[:12]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # a sealed directory cannot be moved to another parent (its '..' changes)
    path.rename(target)
    if state.exists():
        state.rename(target.with_name(target.name + ".state"))
    return str(target)


def remove_quarantined(path: Path) -> None:
    """Delete a quarantined copy and the state moved aside with it."""
    remove_tree(path)
    shutil.rmtree(path.with_name(path.name + ".state"), ignore_errors=True)


def remove_tree(path: Path) -> None:
    unseal(path)
    shutil.rmtree(path, ignore_errors=True)


def batches_of(entries: Iterable[ManifestEntry], max_files: int, max_bytes: int) -> Iterator[BatchRange]:
    """Copy batches over ``entries`` (in key order), as the plan step cuts them."""
    batch: list[ManifestEntry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) >= max_files or size + entry.size > max_bytes):
            yield BatchRange(batch[0].key, batch[-1].key, len(batch), size)
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield BatchRange(batch[0].key, batch[-1].key, len(batch), size)


def first_mismatch(
    found: Iterable[tuple[str, str | None]], expected: Iterable[tuple[str, str | None]]
) -> str | None:
    """How the files on disk (key, BLAKE3, key order) differ from the manifest's, or None."""
    on_disk, wanted = iter(found), iter(expected)
    have, want = next(on_disk, None), next(wanted, None)
    while have is not None or want is not None:
        if want is None or (have is not None and have[0] < want[0]):
            assert have is not None
            return f"{have[0]}: on the node but not in the manifest"
        if have is None or want[0] < have[0]:
            return f"{want[0]}: in the manifest but missing on the node"
        if have[1] is None:
            return f"{have[0]}: not a regular file"
        if have[1] != want[1]:
            return f"{have[0]}: its BLAKE3 differs from the manifest's"
        have, want = next(on_disk, None), next(wanted, None)
    return None


def verify_step(ctx: NodeContext, key: TaskKey) -> None:
    """Check a staging's cache hit on this node before it counts."""
    task = ctx.tasks.claim(key, ctx.owner)
    if task is None:
        return
    ctx.metrics.claimed()
    try:
        with ctx.cache_lock:
            _verify(ctx, key)
    except Exception as exc:
        ctx._give_back_or_fail(key, task.attempts, exc)
        return
    ctx.send_ready(key.job_id, key.node)


def _confirm_other_hits(ctx: NodeContext, key: TaskKey, digest: str, seen: str) -> None:
    """Count this check for the hits of the same copy still waiting for theirs (a burst of
    identical requests): each was admitted before the check began, so it is as good as their
    own, and each still completes, audited, on its own. A task another worker holds is left
    to it."""
    others = ctx.integrity.other_hits(key, digest)
    for start in range(0, len(others), CONFIRM_BATCH):
        claimed = list(ctx.tasks.claim_many(others[start : start + CONFIRM_BATCH], ctx.owner))
        for other in ctx.integrity.confirm_hits(claimed, ctx.owner, digest, seen):
            ctx.tasks.retry_later(other, ctx.owner, "the cached dataset changed while it was checked", 0)


def _verify(ctx: NodeContext, key: TaskKey) -> None:
    integrity = ctx.integrity
    hit = integrity.hit(key)
    if hit is None:
        ctx.tasks.finish(key, ctx.owner)
        return
    if hit.written_by_other:
        integrity.wait_for_writer(key, ctx.owner)
        return
    if hit.state in (DatasetState.EVICTING, DatasetState.DELETING):
        raise RetryLaterError(f"the dataset on node {key.node} is being {hit.state[:-3]}ed right now")
    mismatch: str | None = None
    moved: str | None = None
    if hit.state == DatasetState.READY and hit.path is not None:
        path = _own_dataset(ctx, hit.path)
        seen = fingerprint(path) if path.is_dir() else None
        legacy = seen is not None and (path / LEGACY_STATE_DIR).exists()
        if seen is not None and seen == hit.fingerprint and not legacy:
            if integrity.confirm_hit(key, ctx.owner, hit.digest, seen):
                log.info("cache hit of %s on %s verified", key.job_id, key.node)
                _confirm_other_hits(ctx, key, hit.digest, seen)
                return
            raise RetryLaterError("the cached dataset changed in the ledger while it was checked")
        if hit.fingerprint is None:
            mismatch = "fingerprint: none on record (cached before fingerprints were kept)"
        elif seen is None:
            mismatch = "the dataset directory is missing"
        elif legacy:
            mismatch = LEGACY_LAYOUT
        else:
            mismatch = FINGERPRINT_CHANGED
        moved = move_aside(ctx, path, hit.digest)
        log.warning(
            "cached dataset %s on %s failed its check (%s): copying afresh", hit.digest, key.node, mismatch
        )
    config = ctx.settings.transfer_config()
    share = hit.share
    batches = (
        list(
            batches_of(
                ctx.manifests.entries(
                    ctx.stagings.job(key.job_id).plan_job, first=share.key_from, through=share.key_to
                ),
                config.batch_max_files,
                config.batch_max_bytes,
            )
        )
        if share is not None
        else []
    )
    integrity.recopy(key, ctx.owner, hit.digest, batches, mismatch=mismatch, moved_to=moved)


def sweep_quarantine(ctx: NodeContext) -> None:
    """Delete the quarantined copies no staging holds any more."""
    for copy in ctx.integrity.releasable(ctx.settings.node):
        target = Path(copy.path) if copy.path else None
        if target is not None and target.parent == quarantine_dir(ctx):
            remove_sharing(ctx, target, ())  # it may share files with datasets still cached
            shutil.rmtree(target.with_name(target.name + ".state"), ignore_errors=True)
        ctx.integrity.deleted(copy.id)
        log.info("deleted quarantined copy %s", copy.path or "(already gone)")


def scrub_once(ctx: NodeContext) -> bool:
    """Re-hash the cached dataset due longest, at the scrub rate; False if none was due."""
    settings = ctx.settings
    due = ctx.integrity.next_to_scrub(settings.node, timedelta(seconds=settings.scrub_interval))
    if due is None:
        return False
    path = _own_dataset(ctx, due.path)
    share = ctx.integrity.share_of(settings.node, due.writer_job) if due.writer_job else None
    expected: Iterable[tuple[str, str | None]] = (
        (
            (e.key, e.blake3)
            for e in ctx.manifests.entries(
                ctx.stagings.job(due.writer_job).plan_job, first=share.first, through=share.last
            )
        )
        if due.writer_job and share
        else ()
    )
    limiter = BandwidthLimiter(settings.scrub_rate)
    try:
        mismatch = first_mismatch(file_hashes(path, limiter.consume), expected)
    except FileNotFoundError:
        mismatch = "the dataset directory is missing"
    if mismatch is None:
        ctx.integrity.scrubbed(settings.node, due.digest)
        return True
    with ctx.cache_lock:
        moved = move_aside(ctx, path, due.digest)
        if not ctx.integrity.quarantine(settings.node, due.digest, due.fingerprint, moved or "", mismatch):
            if moved:  # evicted or rewritten meanwhile: what was moved is not a dataset any more
                remove_quarantined(Path(moved))
            return True
    log.warning("scrub: cached dataset %s on %s quarantined (%s)", due.digest, settings.node, mismatch)
    return True


def scrub_forever(ctx: NodeContext, stop: threading.Event) -> None:
    """The background scrub; does nothing when its rate is 0."""
    if ctx.settings.scrub_rate <= 0:
        return
    while not stop.is_set():
        try:
            worked = scrub_once(ctx)
            sweep_quarantine(ctx)
        except Exception as exc:  # the ledger briefly away, a dataset evicted mid-read
            log.warning("scrub pass failed: %s", exc)
            worked = False
        if not worked and stop.wait(SCRUB_IDLE_S):
            return
