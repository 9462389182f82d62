"""Every action the audit trail records, spelled once.

A ``StrEnum`` member is its string, so stored rows, the hash chain over them, exports and
the API's ``action`` filter keep exactly the bytes they had as literals.
"""

from enum import StrEnum


class AuditAction(StrEnum):
    STAGE_REQUESTED = "stage.requested"
    STAGE_COMPLETED = "stage.completed"
    STAGE_FAILED = "stage.failed"
    STAGE_RELEASED = "stage.released"
    STAGE_RENEWED = "stage.renewed"  # its pin lease extended
    POLICY_ALLOWED = "policy.allowed"
    POLICY_DENIED = "policy.denied"
    EGRESS_REQUESTED = "egress.requested"
    EGRESS_COMPLETED = "egress.completed"
    EGRESS_FAILED = "egress.failed"
    CHECKPOINT_DELETED = "checkpoint.deleted"
    LABEL_DECLASSIFIED = "label.declassified"
    DATASET_QUARANTINED = "dataset.quarantined"
    # A cached dataset whose source labels rose above what the staging zone accepts.
    DATASET_LABELS_ROSE = "dataset.labels_rose"
