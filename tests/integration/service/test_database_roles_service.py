"""End to end as a deployment runs it: `stagegate db upgrade` as the owner role, then the API
and a worker connected as the runtime role stage, egress, release and audit, and that role
cannot touch the trail."""

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration.helpers import STAGEGATE
from integration.postgres import database_with_two_roles
from integration.service.cluster import Cluster, RedisServer, audit_actions, dump, env_for
from integration.service.test_egress_service import make_run, wait_egress
from stagegate.ledger import open_ledger

pytestmark = pytest.mark.integration


def test_the_service_works_as_the_runtime_role_which_cannot_alter_the_trail(
    tmp_path: Path,
    pg_admin: sa.Engine,
    subprocess_env: dict[str, str],
    dataset: Callable[..., str],
    bucket: str,
) -> None:
    with database_with_two_roles(pg_admin) as roles:
        owner_env = env_for(subprocess_env, roles.owner_url, "redis://127.0.0.1:1/0", tmp_path / "home")
        owner_env["STAGEGATE_DB_RUNTIME_ROLE"] = roles.runtime
        for _ in range(2):  # idempotent: the second run finds the schema at head and grants again
            upgrade = subprocess.run(
                [STAGEGATE, "db", "upgrade"], env=owner_env, capture_output=True, text=True, timeout=120
            )
            assert upgrade.returncode == 0, upgrade.stderr
            assert f"{roles.runtime}: SELECT, INSERT on audit_events" in upgrade.stdout

        redis = RedisServer(tmp_path)
        redis.start()
        ledger = open_ledger(roles.runtime_url)
        cluster = Cluster(
            workdir=tmp_path,
            env=env_for(subprocess_env, roles.runtime_url, redis.url, tmp_path / "home"),
            ledger=ledger,
            redis=redis,
        )
        try:
            cluster.start_worker("a")
            cluster.start_api()
            cluster.wait_nodes_ready()
            _stage_egress_release(cluster, dataset, bucket)

            verify = cluster.cli("audit", "verify", "--local")
            assert verify.returncode == 0, verify.stdout + verify.stderr
            engine = sa.create_engine(roles.runtime_url)
            try:
                for statement in ("DELETE FROM audit_events", "ALTER TABLE audit_events DISABLE TRIGGER ALL"):
                    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
                        conn.execute(sa.text(statement))
            finally:
                engine.dispose()
        finally:
            cluster.stop()
            ledger.close()


def _stage_egress_release(cluster: Cluster, dataset: Callable[..., str], bucket: str) -> None:
    token = cluster.token("alice", "scientist", "vision")
    source = dataset("roles", {"a.bin": b"a" * 1000, "sub/b.bin": b"b" * 2000})
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"], "job": "run-roles"})
    assert response.status_code == 202, response.text
    staging_id = response.json()["id"]
    final: dict[str, Any] = cluster.wait_terminal(token, staging_id)
    assert final["state"] == "ready", dump(final) + cluster.logs()

    run = make_run(cluster.roots["a"] / "runs" / "alice")
    body = {"run_dir": str(run), "node": "a", "destination": f"s3://{bucket}/models/roles", "latest": 1}
    with cluster.http(token) as http:
        response = http.post("/v1/egress", json=body)
    assert response.status_code == 202, response.text
    egress = wait_egress(cluster, token, response.json()["id"])
    assert egress["state"] == "completed", dump(egress) + cluster.logs()

    with cluster.http(token) as http:
        released = http.delete(f"/v1/stagings/{staging_id}")
    assert released.status_code == 200, released.text
    assert audit_actions(cluster.ledger, staging_id)[-1] == "stage.released"
