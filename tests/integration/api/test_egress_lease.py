"""An egress task gets the app's lease, as a staging's tasks do: the lease is a setting of
the app (``create_app(lease_seconds=...)``, else STAGEGATE_LEASE_SECONDS), not a variable
the egress route reads for itself."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from integration.api.conftest import open_world
from stagegate.ledger.models import TaskRow


def test_an_egress_task_is_leased_for_the_apps_lease_seconds(
    pg_admin: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STAGEGATE_LEASE_SECONDS", raising=False)
    with open_world(pg_admin, lease_seconds=7) as world:
        body = {"run_dir": "/runs/sam/run-1", "node": "gpu-01", "destination": "s3://bucket/out/"}
        response = world.client.post("/v1/egress", json=body, headers=world.headers("scientist"))
        assert response.status_code == 202, response.text
        with world.ledger.sessions() as session:
            task = session.scalars(select(TaskRow).where(TaskRow.job_id == response.json()["id"])).one()
        assert task.lease_until is not None
        assert task.lease_until - task.updated_at == timedelta(seconds=7)
