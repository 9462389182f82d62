"""Durable state: jobs, manifests, node caches, the hash-chained audit trail, usage.

Built in the issue "Classification policy, the ledger, and a tamper-evident audit trail".
"""

from sqlalchemy.orm import sessionmaker

from stagegate.ledger.admission import NoRoomError
from stagegate.ledger.audit import AuditTrail
from stagegate.ledger.cache_integrity import CacheIntegrity, HitToVerify, KeyRange, QuarantinedCopy, ToScrub
from stagegate.ledger.database import Ledger, create_ledger_engine
from stagegate.ledger.events import AuditEvent, ChainVerdict, NewEvent
from stagegate.ledger.jobs import KEEP, Job, Jobs
from stagegate.ledger.label_files import LabelFileRecord, LabelFiles
from stagegate.ledger.manifests import CopiedEntry, ManifestEntry, Manifests
from stagegate.ledger.migrate import upgrade_to_head
from stagegate.ledger.nodes import CachedDatasetView, Eviction, Nodes, NodeView
from stagegate.ledger.redact import redact_url
from stagegate.ledger.settings import ledger_url
from stagegate.ledger.staging_requests import StagingRequests
from stagegate.ledger.staging_steps import NodePortion, RetryLaterError, StagingJob, StagingSteps
from stagegate.ledger.staging_views import NodeStatus, Staging, StagingProgress, StagingViews
from stagegate.ledger.tasks import BatchRange, Task, TaskKey, Tasks
from stagegate.ledger.tokens import ROLES, IssuedToken, Principal, Tokens
from stagegate.ledger.usage import UsageRow


def open_ledger(url: str | None = None) -> Ledger:
    """Open the ledger at ``url`` (default: :func:`ledger.settings.ledger_url`), first bringing
    its schema to the newest revision."""
    engine = create_ledger_engine(url or ledger_url())
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


__all__ = [
    "KEEP",
    "ROLES",
    "AuditEvent",
    "AuditTrail",
    "BatchRange",
    "CacheIntegrity",
    "CachedDatasetView",
    "ChainVerdict",
    "CopiedEntry",
    "Eviction",
    "HitToVerify",
    "IssuedToken",
    "Job",
    "Jobs",
    "KeyRange",
    "LabelFileRecord",
    "LabelFiles",
    "Ledger",
    "ManifestEntry",
    "Manifests",
    "NewEvent",
    "NoRoomError",
    "NodePortion",
    "NodeStatus",
    "NodeView",
    "Nodes",
    "Principal",
    "QuarantinedCopy",
    "RetryLaterError",
    "Staging",
    "StagingJob",
    "StagingProgress",
    "StagingRequests",
    "StagingSteps",
    "StagingViews",
    "Task",
    "TaskKey",
    "Tasks",
    "ToScrub",
    "Tokens",
    "UsageRow",
    "open_ledger",
    "redact_url",
]
