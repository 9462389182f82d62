"""The data-moving engine: sources, the node-local sink, planning, checksums, copying.

It knows nothing of Celery, SQL or HTTP: it takes a plan, a source, a sink and a config,
and reports through a callback.
"""

from stagegate.durability import Durability
from stagegate.progress import Progress, ProgressCallback
from stagegate.transfer.engine import CopyEngine, LabelGate, TransferConfig
from stagegate.transfer.errors import LabelChangedError
from stagegate.transfer.objects import CopiedFile, LabelSpec, SourceObject, Verification
from stagegate.transfer.plan import LabelFile, Plan, plan_dataset
from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.sources import open_source
from stagegate.transfer.stage import stage
from stagegate.transfer.staging_steps import (
    BatchResult,
    StageResult,
    copy_batch,
    publish_batches,
    read_manifest,
)

__all__ = [
    "BatchResult",
    "CopiedFile",
    "CopyEngine",
    "DatasetDir",
    "Durability",
    "LabelChangedError",
    "LabelFile",
    "LabelGate",
    "LabelSpec",
    "Plan",
    "Progress",
    "ProgressCallback",
    "SourceObject",
    "StageResult",
    "TransferConfig",
    "Verification",
    "copy_batch",
    "open_source",
    "plan_dataset",
    "publish_batches",
    "read_manifest",
    "stage",
]
