"""Durable state: jobs, manifests, node caches, the hash-chained audit trail, usage.

Built in the issue "Classification policy, the ledger, and a tamper-evident audit trail".

The names below load on first use (PEP 562 ``__getattr__``), each from the one module that
defines it: ``from stagegate.ledger import AuditEvent`` costs a dataclass, not SQLAlchemy's ORM
and every table, so a command imports only the part of the ledger it uses.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports the same names
    from stagegate.ledger.admission import NoRoomError
    from stagegate.ledger.audit import AuditTrail
    from stagegate.ledger.cache_integrity import (
        CacheIntegrity,
        HitToVerify,
        KeyRange,
        QuarantinedCopy,
        ToScrub,
    )
    from stagegate.ledger.database import Ledger
    from stagegate.ledger.database import create_ledger_engine as create_ledger_engine  # tests use it
    from stagegate.ledger.events import AuditEvent, ChainVerdict, NewEvent
    from stagegate.ledger.jobs import KEEP, Job, Jobs
    from stagegate.ledger.label_files import LabelFileRecord, LabelFiles
    from stagegate.ledger.manifests import CopiedEntry, ManifestEntry, Manifests
    from stagegate.ledger.nodes import CachedDatasetView, Eviction, Nodes, NodeView
    from stagegate.ledger.opening import open_ledger
    from stagegate.ledger.redact import redact_url
    from stagegate.ledger.staging_requests import StagingRequests
    from stagegate.ledger.staging_steps import NodePortion, RetryLaterError, StagingJob, StagingSteps
    from stagegate.ledger.staging_views import NodeStatus, Staging, StagingProgress, StagingViews
    from stagegate.ledger.tasks import BatchRange, Task, TaskKey, Tasks
    from stagegate.ledger.tokens import ROLES, IssuedToken, Principal, Tokens
    from stagegate.ledger.usage import UsageRow

# Each exported name, and the module of this package that defines it.
_DEFINED_IN = {
    "AuditEvent": "events",
    "AuditTrail": "audit",
    "BatchRange": "tasks",
    "CacheIntegrity": "cache_integrity",
    "CachedDatasetView": "nodes",
    "ChainVerdict": "events",
    "CopiedEntry": "manifests",
    "Eviction": "nodes",
    "HitToVerify": "cache_integrity",
    "IssuedToken": "tokens",
    "Job": "jobs",
    "Jobs": "jobs",
    "KEEP": "jobs",
    "KeyRange": "cache_integrity",
    "LabelFileRecord": "label_files",
    "LabelFiles": "label_files",
    "Ledger": "database",
    "ManifestEntry": "manifests",
    "Manifests": "manifests",
    "NewEvent": "events",
    "NoRoomError": "admission",
    "NodePortion": "staging_steps",
    "NodeStatus": "staging_views",
    "NodeView": "nodes",
    "Nodes": "nodes",
    "Principal": "tokens",
    "QuarantinedCopy": "cache_integrity",
    "ROLES": "tokens",
    "RetryLaterError": "staging_steps",
    "Staging": "staging_views",
    "StagingJob": "staging_steps",
    "StagingProgress": "staging_views",
    "StagingRequests": "staging_requests",
    "StagingSteps": "staging_steps",
    "StagingViews": "staging_views",
    "Task": "tasks",
    "TaskKey": "tasks",
    "Tasks": "tasks",
    "ToScrub": "cache_integrity",
    "Tokens": "tokens",
    "UsageRow": "usage",
    "create_ledger_engine": "database",
    "open_ledger": "opening",
    "redact_url": "redact",
}

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


def __getattr__(name: str) -> object:
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError(f"module 'stagegate.ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"stagegate.ledger.{module}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
