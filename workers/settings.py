"""A node worker's settings, from its command line and environment."""

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.sizes import parse_size
from transfer import TransferConfig

LEASE_ENV = "STAGEGATE_LEASE_SECONDS"
RECONCILE_ENV = "STAGEGATE_RECONCILE_SECONDS"
BATCH_FILES_ENV = "STAGEGATE_BATCH_MAX_FILES"
BATCH_BYTES_ENV = "STAGEGATE_BATCH_MAX_BYTES"
BANDWIDTH_ENV = "STAGEGATE_BANDWIDTH_LIMIT"
RUNS_ROOT_ENV = "STAGEGATE_RUNS_ROOT"
# Without --capacity a node offers this share of its filesystem: the rest stays for the OS,
# job scratch and checkpoints.
DEFAULT_CAPACITY_SHARE = 0.8


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


def _env_size(name: str) -> int | None:
    """A size from the environment, written as for the command line (``600KB``, ``4MiB``)."""
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        value = parse_size(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a size such as 600KB or 4MiB, not {raw!r}") from None
    if value < 1:
        raise InvalidInputError(f"{name} must be positive, not {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    node: str
    root: Path
    capacity: int
    concurrency: int = 16
    lease_seconds: float = 120.0
    reconcile_seconds: float = 10.0
    batch_max_files: int = 1000
    batch_max_bytes: int = 1 << 30
    bandwidth_limit: int | None = None
    # Where training runs write checkpoints, one directory per user (<runs_root>/<user>/...):
    # the service egresses only from there, and only a user's own runs.
    runs_root: Path | None = None

    @property
    def owner(self) -> str:
        """Who holds a lease: this process on this host."""
        return f"{self.node}@{socket.gethostname()}:{os.getpid()}"

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            bandwidth_limit=self.bandwidth_limit,
            batch_max_files=self.batch_max_files,
            batch_max_bytes=self.batch_max_bytes,
            recheck_labels=True,
        )

    @classmethod
    def from_env(cls, node: str, root: Path, capacity: int | None, concurrency: int = 16) -> "WorkerSettings":
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        if capacity is None:
            capacity = int(shutil.disk_usage(root).total * DEFAULT_CAPACITY_SHARE)
        return cls(
            node=node,
            root=root,
            capacity=capacity,
            concurrency=concurrency,
            lease_seconds=_env_number(LEASE_ENV, 120.0),
            reconcile_seconds=_env_number(RECONCILE_ENV, 10.0),
            batch_max_files=int(_env_number(BATCH_FILES_ENV, 1000)),
            batch_max_bytes=int(_env_number(BATCH_BYTES_ENV, 1 << 30)),
            bandwidth_limit=_env_size(BANDWIDTH_ENV),  # bytes per second, as --bandwidth
            runs_root=Path(os.environ.get(RUNS_ROOT_ENV) or root / "runs").resolve(),
        )

    def user_runs(self, user: str) -> Path:
        """The only directory this node's service egresses for ``user`` may read from."""
        return (self.runs_root or self.root / "runs") / user
