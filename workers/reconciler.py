"""The reconciler: the ledger says what must be running; this makes the broker agree.

Run every few seconds by every node worker. Each pass:
- re-sends tasks whose lease ran out (a worker died mid-batch, Redis lost its queue);
- sends tasks that should be in flight but were never sent (a crash between a commit and
  its send);
- completes stagings whose every node is ready (a crash between a node's finalize and the
  staging's completion);
- releases stagings whose pin lease ran out (``ledger.pins``), audited with the reason;
- releases stagings whose Kubernetes owner is gone (``workers.owner_checks``), each owner
  asked at most every ``STAGEGATE_OWNER_CHECK_SECONDS``; an owner it cannot ask about keeps
  its pins.
Several reconcilers may run at once: each re-send is claimed by a conditional update, so a
task is re-sent once per lease however many run.
"""

import logging

from stagegate.ledger.pins import PinLeases
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.owner_checks import OwnerChecker, Verdict, release_gone_owners

log = logging.getLogger(__name__)


def reconcile_once(ctx: NodeContext) -> int:
    """One pass; returns how many messages it sent."""
    expired = ctx.tasks.take_expired()
    sent = ctx.dispatcher.send(k.to_message() for k in expired)
    if expired:
        log.info("re-sent %d tasks whose lease ran out", len(expired))
    for job_id in ctx.tasks.jobs_with_waiting():
        sent += ctx.send_ready(job_id)
    for job_id in ctx.stagings.transferring():
        ctx.stagings.complete_if_ready(job_id)
    ended = PinLeases(ctx.ledger).expire_due()
    if ended:
        log.info("released %d staging(s) whose pin lease ran out: %s", len(ended), ", ".join(ended))
    if ctx.owner_checker is not None:
        _release_ownerless(ctx, ctx.owner_checker)
    return sent


def _release_ownerless(ctx: NodeContext, checker: OwnerChecker) -> None:
    def counted(verdict: Verdict) -> None:
        ctx.metrics.owner_checks.labels(ctx.settings.node, verdict.value).inc()

    gone = release_gone_owners(ctx.ledger, checker, ctx.settings.owner_check_seconds, counted)
    if gone:
        log.info("released %d staging(s) whose Kubernetes owner is gone: %s", len(gone), ", ".join(gone))
