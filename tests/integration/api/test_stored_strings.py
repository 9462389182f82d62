"""The enums reach PostgreSQL as their values: psycopg adapts a ``StrEnum`` as the string
(its Enum adapter would store the member's *name*, ``PENDING``), so rows written through the
enums match every row written before them."""

import sqlalchemy as sa

from integration.api.conftest import World
from stagegate.actions import AuditAction
from stagegate.states import StagingState, TaskState


def test_rows_hold_the_enum_values_byte_for_byte(world: World) -> None:
    response = world.post("scientist")
    assert response.status_code in (201, 202), response.text
    job_id = response.json()["id"]
    with world.ledger.engine.connect() as conn:
        state = conn.execute(sa.text("SELECT state FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()
        task_states = set(
            conn.execute(sa.text("SELECT state FROM tasks WHERE job_id = :id"), {"id": job_id}).scalars()
        )
        actions = set(
            conn.execute(
                sa.text("SELECT action FROM audit_events WHERE job_id = :id"), {"id": job_id}
            ).scalars()
        )
    assert state in {s.value for s in StagingState} and state == StagingState.PENDING.value
    assert task_states == {TaskState.QUEUED.value}
    assert actions == {AuditAction.STAGE_REQUESTED.value}
    assert all(type(v) is str for v in (state, *task_states, *actions))
