"""The state and audit-action enums spell exactly what the ledger stores and the API serves:
a changed value would orphan existing rows and break every client."""

from stagegate.actions import AuditAction
from stagegate.states import (
    DatasetState,
    EgressState,
    NodeStagingState,
    PlanShareState,
    StagingState,
    TaskState,
)


def test_staging_states_are_the_stored_strings() -> None:
    assert [s.value for s in StagingState] == [
        "pending", "planning", "transferring", "ready", "failed", "denied", "released",
    ]  # fmt: skip


def test_node_staging_states_are_the_served_strings() -> None:
    assert [s.value for s in NodeStagingState] == ["pending", "transferring", "ready", "failed", "released"]


def test_egress_states_are_the_stored_strings() -> None:
    assert [s.value for s in EgressState] == ["pending", "running", "completed", "failed", "denied"]


def test_dataset_states_are_the_stored_strings() -> None:
    assert [s.value for s in DatasetState] == ["writing", "ready", "evicting", "deleting"]


def test_plan_share_states_are_the_stored_strings() -> None:
    assert [s.value for s in PlanShareState] == ["planning", "planned"]


def test_task_states_are_the_stored_strings() -> None:
    assert [s.value for s in TaskState] == ["waiting", "queued", "running", "done", "failed", "cancelled"]


def test_audit_actions_are_the_recorded_strings() -> None:
    assert sorted(a.value for a in AuditAction) == sorted([
        "stage.requested", "stage.completed", "stage.failed", "stage.released", "stage.renewed",
        "policy.allowed", "policy.denied",
        "egress.requested", "egress.completed", "egress.failed",
        "checkpoint.deleted", "label.declassified", "dataset.quarantined",
        "dataset.labels_rose",
    ])  # fmt: skip


def test_a_member_is_its_string() -> None:
    # What lets rows, JSON and the hash chain keep their bytes: str(), format and == all give the value.
    assert str(StagingState.READY) == f"{StagingState.READY}" == "ready"
    assert AuditAction.STAGE_COMPLETED == "stage.completed"
    assert isinstance(TaskState.DONE, str)
