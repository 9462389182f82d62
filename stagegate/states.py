"""The states a staging, an egress, a node's part, a cached dataset and a queued task pass
through: the one spelling the ledger stores, the API serves and the client reads.

``StrEnum`` so a member *is* its string: rows, JSON and OpenAPI enums stay byte-identical to
the literals they replace, and no migration is needed.
"""

from enum import StrEnum


class StagingState(StrEnum):
    """A staging job (``jobs.state`` of kind ``stage``)."""

    PENDING = "pending"  # recorded, its plan not yet claimed
    PLANNING = "planning"  # a worker lists the source and asks the policy
    TRANSFERRING = "transferring"
    READY = "ready"
    FAILED = "failed"
    DENIED = "denied"  # by the classification policy
    RELEASED = "released"  # the job is done with it; the nodes may evict the data


# A staging in one of these can no longer change.
STAGING_TERMINAL = frozenset(
    {StagingState.READY, StagingState.FAILED, StagingState.DENIED, StagingState.RELEASED}
)


class NodeStagingState(StrEnum):
    """One node's part of a staging, as the read model derives it."""

    PENDING = "pending"
    TRANSFERRING = "transferring"
    READY = "ready"
    FAILED = "failed"
    RELEASED = "released"


class EgressState(StrEnum):
    """A checkpoint egress (``jobs.state`` of kind ``egress``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DENIED = "denied"


EGRESS_TERMINAL = frozenset({EgressState.COMPLETED, EgressState.FAILED, EgressState.DENIED})


class PlanShareState(StrEnum):
    """A plan shared by identical requests (``plan_shares.state``)."""

    PLANNING = "planning"  # one staging lists the source, under a lease
    PLANNED = "planned"  # done: followers reuse it while it is fresh


class DatasetState(StrEnum):
    """A dataset in a node's cache (``node_datasets.state``)."""

    WRITING = "writing"  # a staging is copying into it; may be pinned
    READY = "ready"  # complete and verified; may be pinned
    EVICTING = "evicting"  # chosen to go; the node moves it to its trash
    DELETING = "deleting"  # moved aside; its row goes once the bytes are gone


class TaskState(StrEnum):
    """A queued task (``tasks.state``)."""

    WAITING = "waiting"  # created, not yet sent
    QUEUED = "queued"  # sent to the broker
    RUNNING = "running"  # claimed by a worker
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
