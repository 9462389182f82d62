"""``stagegate worker``: one per GPU node. Consumes the node's queue and the shared plan
queue, one task at a time (each batch copies with many threads of its own), heartbeats and
reconciles, signs audit checkpoints when due, scrubs its cached datasets in the background,
and serves its verified batches to the other nodes (peer fan-out, ``workers.peer_server``).
Datasets chosen for eviction are deleted at start and before each copy batch: eviction only
ever happens to admit a dataset this node is about to copy; quarantined copies once no
staging holds them."""

import logging
import threading
from pathlib import Path

from stagegate.ledger import open_ledger
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.nodes import HEARTBEAT_EVERY
from stagegate.policies import Policy
from stagegate.queues import PLAN_QUEUE, Dispatcher, make_celery, node_queue
from stagegate.workers.cache_integrity import scrub_forever, sweep_quarantine
from stagegate.workers.celery_app import node_app
from stagegate.workers.label_rescan import rescan_forever
from stagegate.workers.metrics import DEFAULT_METRICS_HOST
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.owner_checks import KubernetesOwners
from stagegate.workers.peer_server import PeerServer
from stagegate.workers.plan_recheck import recheck_forever
from stagegate.workers.reconciler import reconcile_once
from stagegate.workers.settings import WorkerSettings

log = logging.getLogger(__name__)
HEARTBEAT_S = HEARTBEAT_EVERY.total_seconds()


def _heartbeat(ctx: NodeContext, stop: threading.Event) -> None:
    """Say the node is alive every HEARTBEAT_S, and nothing else: liveness (``ledger.nodes``) is
    three missed heartbeats, so this must not wait behind a reconcile pass or a signing."""
    settings = ctx.settings
    while not stop.wait(HEARTBEAT_S):
        try:
            ctx.nodes.heartbeat(
                settings.node, str(settings.root), settings.capacity, ctx.owner, settings.peer_url
            )
        except Exception as exc:  # the ledger is briefly away: keep trying
            log.warning("heartbeat failed: %s", exc)


def _background(ctx: NodeContext, checkpoints: Checkpoints, stop: threading.Event) -> None:
    """Sweep the quarantine and the views every few seconds; reconcile (re-sends, completions, expired pin
    leases), and sign an audit checkpoint when one is due, every ``reconcile_seconds``."""
    settings = ctx.settings
    waited = settings.reconcile_seconds  # reconcile at once on start: recover what a crash left
    while True:
        try:
            sweep_quarantine(ctx)
            ctx.sync_views()  # a view appears within seconds of its staging's ready, goes with its pin
            if waited >= settings.reconcile_seconds:
                waited = 0.0
                reconcile_once(ctx)
                # Every worker asks; the checkpoint lock lets one sign, the rest find it done.
                checkpoints.sign_if_due()
        except Exception as exc:  # the ledger or the broker is briefly away: keep trying
            log.warning("background pass failed: %s", exc)
        step = min(HEARTBEAT_S, settings.reconcile_seconds)
        if stop.wait(step):
            return
        waited += step


def run_worker(
    node: str,
    root: Path,
    capacity: int | None,
    concurrency: int,
    policy: Policy | None = None,
    metrics_port: int = 0,
    metrics_host: str = DEFAULT_METRICS_HOST,
) -> None:
    """Serve ``node`` until stopped, and its metrics on ``metrics_host``:``metrics_port`` (port 0:
    none). Blocks."""
    settings = WorkerSettings.from_env(node, root, capacity, concurrency)
    (settings.root / "datasets").mkdir(parents=True, exist_ok=True)
    ledger = open_ledger()
    owner_checker = KubernetesOwners.for_worker(settings)
    if owner_checker is None:
        log.info(
            "no Kubernetes API (KUBERNETES_SERVICE_HOST, STAGEGATE_KUBE_API): owned pins end by lease only"
        )
    ctx = NodeContext(
        settings, ledger, policy or Policy.default(), Dispatcher(make_celery()), owner_checker=owner_checker
    )
    ctx.nodes.heartbeat(settings.node, str(settings.root), settings.capacity, ctx.owner, settings.peer_url)
    ctx.metrics.serve(metrics_port, metrics_host)
    peers = None
    if settings.peer_listen is not None and settings.peer_secret is not None:
        host, port = settings.peer_listen
        peers = PeerServer(ctx, host, port, settings.peer_secret).start()
        log.info("node %s serves verified batches to peers on %s:%d", node, host, peers.port)
    ctx.sweep_evictions()
    stop = threading.Event()
    checkpoints = Checkpoints.from_settings(ledger)
    beat = threading.Thread(target=_heartbeat, args=(ctx, stop), name="heartbeat", daemon=True)
    beat.start()
    thread = threading.Thread(
        target=_background, args=(ctx, checkpoints, stop), name="reconcile", daemon=True
    )
    thread.start()
    scrub = threading.Thread(target=scrub_forever, args=(ctx, stop), name="scrub", daemon=True)
    scrub.start()
    rescan = threading.Thread(target=rescan_forever, args=(ctx, stop), name="label-rescan", daemon=True)
    rescan.start()
    recheck = threading.Thread(target=recheck_forever, args=(ctx, stop), name="plan-recheck", daemon=True)
    recheck.start()
    app = node_app(ctx)
    log.info("node %s serving %s (capacity %d bytes)", node, settings.root, settings.capacity)
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",  # one task at a time; the copy engine has its own threads
                f"--queues={node_queue(node)},{PLAN_QUEUE}",
                f"--hostname={node}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ]
        )
    finally:
        stop.set()
        if peers is not None:
            peers.stop()
        beat.join(timeout=10)
        thread.join(timeout=10)
        scrub.join(timeout=10)
        rescan.join(timeout=10)
        recheck.join(timeout=10)
        ledger.close()
