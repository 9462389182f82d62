"""The broker's side of the contract between the API and the node workers: task names,
queue names, and the Celery settings both ends share.

The API sends tasks by name and never imports the workers; a task message holds only
identifiers (see :class:`ledger.TaskKey`), never a URL, a path or a credential.
"""

import logging
from collections.abc import Iterable, Mapping

from celery import Celery

from stagegate.settings import load_settings

log = logging.getLogger(__name__)

PLAN_QUEUE = "stagegate.plan"  # every node worker plans; any idle one takes a staging's plan
TASK_NAMES = {"plan": "stagegate.plan", "copy": "stagegate.copy_batch", "finalize": "stagegate.finalize"}
TASK_NAMES["egress"] = "stagegate.egress"  # a checkpoint egress, on the node holding the run dir
TASK_NAMES["verify"] = "stagegate.verify"  # a cache hit checked on its node before it counts
# Redis redelivers an unacknowledged message after this long. A batch (about 1 GiB or 1,000
# files) takes seconds to minutes; the ledger's leases, not this timer, recover lost work.
VISIBILITY_TIMEOUT_S = 6 * 3600


def broker_url() -> str:
    return load_settings().broker_url.get_secret_value()


def node_queue(node: str) -> str:
    """The queue only ``node``'s worker consumes."""
    return f"node.{node}"


def queue_for(kind: str, node: str) -> str:
    return PLAN_QUEUE if kind == "plan" else node_queue(node)


def make_celery(url: str | None = None) -> Celery:
    app = Celery("stagegate", broker=url or broker_url(), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,  # a message is acknowledged when its task ends, not when it starts
        task_reject_on_worker_lost=True,  # a killed worker's task goes back to the queue
        worker_prefetch_multiplier=1,  # a worker holds one message beyond what it runs
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarting Redis is waited for, not given up on
        broker_connection_timeout=2.0,  # a send to a dead broker fails fast; the reconciler re-sends
        task_default_queue=PLAN_QUEUE,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


class Dispatcher:
    """Sends task messages. A failed send is logged and left to the reconciler: the task's
    row is already in the ledger, and its lease will run out."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    @property
    def app(self) -> Celery:
        return self._app

    def send(self, messages: Iterable[Mapping[str, object]]) -> int:
        sent = 0
        for message in messages:
            kind, node = str(message["kind"]), str(message["node"])
            try:
                self._app.send_task(
                    TASK_NAMES[kind], kwargs=dict(message), queue=queue_for(kind, node), retry=False
                )
                sent += 1
            except Exception as exc:  # the broker is down: the reconciler sends it later
                log.warning("could not send %s task for job %s: %s", kind, message.get("job_id"), exc)
        return sent
