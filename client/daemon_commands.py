"""The long-running processes of a deployment: ``stagegate serve`` (the API) and
``stagegate worker`` (one per GPU node). Both import their implementation only when run, so
the CLI starts without FastAPI, uvicorn or Celery."""

from pathlib import Path

import click

from stagegate.client import context
from stagegate.client.errors import EXIT_INTERRUPTED
from stagegate.client.stage_command import SIZE

DEFAULT_PORT = 8080
# The worker's Prometheus endpoint: the same defaults as workers.metrics (a test keeps them equal),
# repeated so that the CLI starts without importing prometheus_client.
DEFAULT_METRICS_PORT = 9108
DEFAULT_METRICS_HOST = "127.0.0.1"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; put TLS in front of it).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
def serve(host: str, port: int) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) until stopped with Ctrl-C or SIGTERM.

    Reads STAGEGATE_DATABASE_URL (the ledger, PostgreSQL in a deployment), STAGEGATE_BROKER_URL
    (Celery broker, default redis://127.0.0.1:6379/0), STAGEGATE_LEASE_SECONDS (120) and
    STAGEGATE_DECISION_WAIT (seconds a submission waits for the policy's decision, 10). The
    policy itself is applied by the workers' plan step (their STAGEGATE_POLICY).
    """
    import uvicorn

    from stagegate.api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@click.command()
@click.option("--node", required=True, metavar="NAME", help="This node's name, as users pass it to --node.")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The cache directory on node-local disk that datasets are staged into.",
)
@click.option(
    "--capacity",
    type=SIZE,
    default=None,
    help="Most bytes the cache may hold, e.g. 500G or 2TiB (default: 80% of the disk holding --root).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Files copied at once within a batch (big files: parts read at once).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: do not).",
)
@click.option(
    "--metrics-host",
    default=DEFAULT_METRICS_HOST,
    show_default=True,
    metavar="ADDRESS",
    help="Address the metrics listen on. They have no authentication: loopback by default; in a "
    "cluster give the pod's IP (deploy/k8s does) and let a NetworkPolicy admit only Prometheus.",
)
def worker(
    node: str, root: Path, capacity: int | None, concurrency: int, metrics_port: int, metrics_host: str
) -> None:
    """Run the node worker for this GPU node until stopped: it takes this node's stagings from
    the queue, copies and verifies them into --root, reports a heartbeat, and evicts unpinned
    datasets when the cache is full.

    Reads STAGEGATE_BROKER_URL, STAGEGATE_DATABASE_URL, STAGEGATE_POLICY (the policy the plan
    step applies; default: the shipped one), STAGEGATE_LEASE_SECONDS,
    STAGEGATE_RECONCILE_SECONDS, STAGEGATE_BANDWIDTH_LIMIT, STAGEGATE_BATCH_MAX_FILES,
    STAGEGATE_BATCH_MAX_BYTES, STAGEGATE_RUNS_ROOT (where users' runs live, one directory per
    user, that service egresses may read; default: ROOT/runs), STAGEGATE_EGRESS_ROOT (where
    service egresses to a path may write, one directory per user; default: ROOT/egress; it
    must not overlap ROOT/datasets or the runs root), and the AWS_* variables
    (AWS_ENDPOINT_URL for an S3-compatible store) for reading the sources.
    """
    from stagegate.workers.node_worker import run_worker

    policy = context.load_policy(None)  # $STAGEGATE_POLICY, as the embedded mode reads it
    try:
        run_worker(
            node=node,
            root=root,
            capacity=capacity,
            concurrency=concurrency,
            policy=policy,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
    except KeyboardInterrupt:
        click.echo(f"stagegate: worker {node} stopped", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
