"""The background label re-scan of a node's cached datasets.

Labels change without changing an object's ETag or LastModified (an S3 tag set after the
copy), so neither a cache hit nor a fresh listing sees them. This thread re-reads, for the
ready dataset whose labels were read longest ago, every label file of its directories and
every object's own label (S3: a HEAD each, and a tag request only for objects that have tags),
at most ``label_rescan_rate`` requests a second, and asks the policy again. A dataset the
staging zone no longer accepts is quarantined (``ledger.label_quarantine``): audited, never
pinned again, and evicted as soon as no staging holds it.

It runs in the node worker, in a thread of its own beside the scrub, not in the reconciler:
a re-read of a big dataset takes minutes at a gentle rate, and the reconciler's quick pass
(re-sends, completions, expired pins) must not wait behind it. Each node re-reads its own
datasets, as its scrub does. The source is opened as the staging's requester, never with
more rights than they had.
"""

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

from stagegate.ledger.label_quarantine import DueDataset
from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.policies import LabelResolver, Zone
from stagegate.transfer import SourceObject
from stagegate.transfer.errors import SourceChangedError
from stagegate.transfer.plan import directories_of, read_small
from stagegate.transfer.sources import Source
from stagegate.transfer.throttle import BandwidthLimiter
from stagegate.workers.confined_sources import confined_source
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.staging import LABELS, resolver_of_contents

log = logging.getLogger(__name__)
IDLE_S = 5.0


def _label_files_now(source: Source, directories: set[str], limiter: BandwidthLimiter) -> dict[str, bytes]:
    """The label file of each directory as it is now (a look-up, then a read where one exists)."""
    contents: dict[str, bytes] = {}
    for directory in sorted(directories):
        key = f"{directory}/{LABELS.file_name}" if directory else LABELS.file_name
        limiter.consume(1)
        found = source.find(key)
        if found is not None:
            limiter.consume(1)
            contents[directory] = read_small(source, found, MAX_LABEL_FILE_BYTES)
    return contents


def _labels_now(
    source: Source, objects: list[SourceObject], resolver: LabelResolver, limiter: BandwidthLimiter
) -> Iterator[tuple[str, str]]:
    for obj in objects:
        limiter.consume(1)
        try:
            own = source.own_label(obj)
        except SourceChangedError:
            continue  # deleted or replaced at the source: the copy holds what was read then
        yield obj.key, resolver.resolve(obj.key, own).label


def rescan(ctx: NodeContext, due: DueDataset, limiter: BandwidthLimiter) -> bool:
    """Re-read ``due``'s labels; True if they rose above what the zone accepts (quarantined)."""
    share = ctx.integrity.share_of(due.node, due.writer_job)
    objects = (
        [
            SourceObject(e.key, e.size, e.revision, e.version, e.mtime)
            for e in ctx.manifests.entries(due.plan_job, first=share.first, through=share.last)
        ]
        if share is not None
        else []
    )
    planned = {r.directory for r in ctx.label_files.of_job(due.plan_job)}
    with confined_source(
        due.source,
        ctx.settings.source_rules,
        due.actor,
        due.project,
        max_connections=4,
        labels=LABELS,
    ) as source:
        contents = _label_files_now(source, directories_of(o.key for o in objects) | planned, limiter)
        # The label files above the source labelled it at planning (a subset staged under a
        # labelled prefix): read them again too, or such a dataset looks unclassified here.
        above = source.label_files_above(LABELS.file_name)
        limiter.consume(max(1, len(above)))
        resolver = resolver_of_contents(contents, above, ctx.policy)
        decision = ctx.policy.decide(Zone.staging(), _labels_now(source, objects, resolver, limiter))
    if decision.allowed:
        ctx.dataset_labels.checked(due.node, due.digest)
        return False
    details: dict[str, object] = {
        "offending": decision.offending_count,
        "highest_label": decision.highest_label,
    }
    if ctx.dataset_labels.quarantine(due, list(decision.reasons), details):
        log.warning(
            "cached dataset %s on %s quarantined: its labels rose (%s)",
            due.digest,
            due.node,
            "; ".join(decision.reasons),
        )
    return True


def rescan_once(ctx: NodeContext, limiter: BandwidthLimiter) -> bool:
    """Evict released quarantined datasets, then re-read the dataset due longest; False if
    none was due."""
    settings = ctx.settings
    if ctx.dataset_labels.evict_released(settings.node):
        ctx.sweep_evictions()
    due = ctx.dataset_labels.next_due(settings.node, timedelta(seconds=settings.label_rescan_interval))
    if due is None:
        return False
    if rescan(ctx, due, limiter) and ctx.dataset_labels.evict_released(settings.node):
        ctx.sweep_evictions()
    ctx.sweep_evictions()
    return True


def rescan_forever(ctx: NodeContext, stop: threading.Event) -> None:
    """The background re-scan; does nothing when its rate is 0."""
    if ctx.settings.label_rescan_rate <= 0:
        return
    limiter = BandwidthLimiter(max(1, round(ctx.settings.label_rescan_rate)))
    while not stop.is_set():
        try:
            worked = rescan_once(ctx, limiter)
        except Exception as exc:  # the ledger or the source briefly away, a dataset evicted mid-read
            log.warning("label re-scan failed: %s", exc)
            worked = False
        if not worked and stop.wait(IDLE_S):
            return
