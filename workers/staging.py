"""Staging steps. Today: the whole staging in-process (the embedded mode)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transfer import (
    Durability,
    Plan,
    Progress,
    ProgressCallback,
    StageResult,
    TransferConfig,
    open_source,
    stage,
)

__all__ = ["Durability", "Plan", "Progress", "StageResult", "StagingOptions", "run_staging"]


@dataclass(frozen=True, slots=True)
class StagingOptions:
    """The tunables a caller may set; plain values, so they can travel in a task message."""

    concurrency: int = 16
    part_size: int = 64 << 20
    multipart_threshold: int = 128 << 20
    bandwidth_limit: int | None = None
    durability: Durability = Durability.BATCH

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            part_size=self.part_size,
            multipart_threshold=self.multipart_threshold,
            bandwidth_limit=self.bandwidth_limit,
            durability=self.durability,
        )


def run_staging(
    source_url: str,
    destination: str | Path,
    options: StagingOptions | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> StageResult:
    """Stage ``source_url`` into ``destination`` in this process."""
    options = options or StagingOptions()
    # Connections: one per file thread plus one per part thread.
    source = open_source(source_url, max_connections=2 * options.concurrency + 4)
    return stage(source, destination, options.transfer_config(), on_progress, on_plan)
