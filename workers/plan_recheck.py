"""Keeping the shared plans in use verified, so a cache hit never lists.

A hit after the freshness window used to list the whole source again (seconds for 100,000
objects, minutes for ten million) and write a manifest row per object, to learn what the
cached copy already holds. This thread moves that listing out of the request: a shared plan
that a request used within ``plan_keep_warm_seconds`` is listed again, as its leader's
requester, once it is half a window old; the source is read and decided exactly as a plan
reads it (:meth:`NodeContext.list_and_decide`: every key, size, ETag or version, every label
file in it and above it). The same digest and the same decision (allowed, same reasons, same
highest label) make the plan fresh again from the moment that listing began; anything else
forgets it, and the next request lists and decides afresh.

What a hit therefore skips, and why that is safe:
- A change the listing can see (an object added, deleted or rewritten; a ``.classification``
  file rewritten, in the source or above it) is seen at most one freshness window late, as
  before; a rewritten object is refused by the If-Match GET of any copy that would read it.
- A change no listing can see (an S3 tag set after the copy) was never seen by a hit: the
  label re-scan (``workers.label_rescan``) finds it and quarantines the cached copies, and
  forgets their plans.
- A hit is still decided as its own requester: each follower's source rights are checked
  before it follows (``NodeContext._plan``); the check here reads as the leader's requester.
"""

import logging
import tempfile
import threading
import time
from pathlib import Path

from stagegate.ledger.plan_shares import DueCheck
from stagegate.workers.node_steps import NodeContext, plan_reasons
from stagegate.workers.staging import decision_details

log = logging.getLogger(__name__)
IDLE_S = 1.0
# A listing that outlasts the window waits this many times its own length before the next.
HOLD_OFF_LISTINGS = 4


def unchanged(ctx: NodeContext, check: DueCheck) -> bool:
    """Whether the source of ``check``'s plan lists and decides now as it did when planned."""
    plan = check.plan
    if plan.policy_version != ctx.policy.version:
        return False  # planned under another policy: decided afresh under this one
    job = ctx.stagings.job(plan.job_id)
    with (
        ctx.source_of(job) as source,
        tempfile.TemporaryDirectory(prefix="stagegate-recheck-") as scratch,
    ):
        now, _, decision = ctx.list_and_decide(job, source, Path(scratch))
    return (
        now.digest == plan.digest
        and decision.allowed == plan.allowed
        and plan_reasons(decision) == tuple(plan.reasons)
        and decision_details(decision) == plan.details
    )


def recheck_once(ctx: NodeContext) -> bool:
    """Check the shared plan due most; False if none was due."""
    check = ctx.plan_shares.check_due(ctx.owner, ctx.settings.plan_keep_warm_seconds)
    if check is None:
        return False
    started = time.monotonic()
    try:
        same = unchanged(ctx, check)
    except Exception as exc:  # the source gone, not readable as planned, or unsafe now
        log.info(
            "plan of staging %s not re-verified (%s): the next request plans afresh", check.plan.job_id, exc
        )
        same = False
    took = time.monotonic() - started
    if not same:
        ctx.plan_shares.forget(check)
        log.info("plan of staging %s forgotten: its source changed", check.plan.job_id)
    elif took >= ctx.settings.plan_fresh_seconds:
        # Fresh from the listing's start, it would be stale already: a hit lists anyway. Try
        # again later (a loaded source may list faster then), listing at most a fifth of the time.
        wait = min(ctx.settings.plan_keep_warm_seconds, HOLD_OFF_LISTINGS * took)
        ctx.plan_shares.hold_off(check, wait)
        log.warning(
            "plan of staging %s not kept warm: listing its %d files took %.1f s, longer than "
            "STAGEGATE_PLAN_FRESH_SECONDS (%g s); next check in %.0f s",
            check.plan.job_id,
            check.plan.files,
            took,
            ctx.settings.plan_fresh_seconds,
            wait,
        )
    elif ctx.plan_shares.verified(check):
        log.info(
            "plan of staging %s re-verified: %d files unchanged, listed in %.1f s",
            check.plan.job_id,
            check.plan.files,
            took,
        )
    return True


def recheck_forever(ctx: NodeContext, stop: threading.Event) -> None:
    """The background check; does nothing when plans are not kept warm or never shared."""
    if ctx.settings.plan_keep_warm_seconds <= 0 or ctx.settings.plan_fresh_seconds <= 0:
        return
    while not stop.is_set():
        try:
            worked = recheck_once(ctx)
        except Exception as exc:  # the ledger briefly away
            log.warning("plan re-check failed: %s", exc)
            worked = False
        if not worked and stop.wait(IDLE_S):
            return
