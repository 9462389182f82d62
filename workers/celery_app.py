"""The Celery tasks: thin wrappers that turn a message into a :class:`ledger.TaskKey` and
hand it to this node's :class:`workers.node_steps.NodeContext`."""

from collections.abc import Callable
from functools import partial

from celery import Celery

from stagegate.ledger import TaskKey
from stagegate.queues import TASK_NAMES, make_celery
from stagegate.workers.cache_integrity import verify_step
from stagegate.workers.egress import egress_step
from stagegate.workers.node_steps import NodeContext


def register_tasks(app: Celery, ctx: NodeContext) -> None:
    steps: dict[str, Callable[[TaskKey], None]] = {
        "plan": ctx.plan,
        "copy": ctx.copy,
        "finalize": ctx.finalize,
        "egress": partial(egress_step, ctx),
        "verify": partial(verify_step, ctx),
    }
    for kind, name in TASK_NAMES.items():
        step = steps[kind]

        def run(job_id: str, kind: str, node: str, idx: int, _step=step) -> None:  # type: ignore[no-untyped-def]
            _step(TaskKey(job_id=job_id, kind=kind, node=node, idx=int(idx)))

        app.task(name=name, bind=False, acks_late=True, reject_on_worker_lost=True)(run)


def node_app(ctx: NodeContext) -> Celery:
    app = make_celery()
    register_tasks(app, ctx)
    return app
