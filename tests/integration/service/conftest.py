"""Fixtures for end-to-end tests of the service: see :mod:`integration.service.cluster`."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration.postgres import fresh_pg_database
from integration.service.cluster import Cluster, RedisServer, env_for
from stagegate.ledger import open_ledger

StartCluster = Callable[..., Cluster]


@pytest.fixture
def start_cluster(
    tmp_path: Path,
    pg_admin: sa.Engine,
    subprocess_env: dict[str, str],
) -> Iterator[StartCluster]:
    """``start_cluster(nodes={"a": None, "b": "10M"}, env={...})`` starts Redis, the API and one
    worker per node (with its capacity), and waits until all are ready."""
    with fresh_pg_database(pg_admin, migrated=True) as db_url:
        clusters: list[Cluster] = []

        def start(nodes: dict[str, str | None], env: dict[str, str] | None = None) -> Cluster:
            redis = RedisServer(tmp_path)
            redis.start()
            ledger = open_ledger(db_url)
            cluster = Cluster(
                workdir=tmp_path,
                env={**env_for(subprocess_env, db_url, redis.url, tmp_path / "home"), **(env or {})},
                ledger=ledger,
                redis=redis,
            )
            clusters.append(cluster)
            for node, capacity in nodes.items():
                cluster.start_worker(node, capacity)
            cluster.start_api()
            cluster.wait_nodes_ready()
            return cluster

        try:
            yield start
        finally:
            for cluster in clusters:
                cluster.discard()
                cluster.ledger.close()


@pytest.fixture
def dataset(s3_client, bucket: str) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """``dataset(prefix, files, label="public")`` puts ``files`` under ``s3://bucket/prefix/``
    with a ``.classification`` file at its root, and returns the URL."""
    from integration.helpers import put_objects

    def make(prefix: str, files: dict[str, bytes], label: str | None = "public") -> str:
        objects = {f"{prefix}/{k}": v for k, v in files.items()}
        if label is not None:
            objects[f"{prefix}/.classification"] = label.encode() + b"\n"
        put_objects(s3_client, bucket, objects)
        return f"s3://{bucket}/{prefix}"

    return make
