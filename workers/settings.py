"""A node worker's settings, from its command line and :mod:`stagegate.settings`."""

import os
import shutil
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from stagegate.confinement import SourceRules
from stagegate.errors import InvalidInputError
from stagegate.settings import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_FILES,
    DEFAULT_FANOUT_PER_HOLDER,
    DEFAULT_FANOUT_READERS,
    DEFAULT_LABEL_RESCAN_INTERVAL,
    DEFAULT_LABEL_RESCAN_RATE,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_OWNER_CHECK_SECONDS,
    DEFAULT_PLAN_FRESH_SECONDS,
    DEFAULT_PLAN_KEEP_WARM_SECONDS,
    DEFAULT_RECONCILE_SECONDS,
    DEFAULT_SCRUB_INTERVAL,
    DEFAULT_SCRUB_RATE,
    env_name,
    load_settings,
)
from stagegate.transfer import TransferConfig
from stagegate.transfer.copy_processes import default_processes

RUNS_ROOT_ENV = env_name("runs_root")
EGRESS_ROOT_ENV = env_name("egress_root")
BANDWIDTH_ENV = env_name("bandwidth_limit")
# Without --capacity a node offers this share of its filesystem: the rest stays for the OS,
# job scratch and checkpoints.
DEFAULT_CAPACITY_SHARE = 0.8


def copy_processes(given: int | None = None) -> int:
    """Copy processes for small files: ``given``, else STAGEGATE_COPY_PROCESSES, else one per
    four cores of this machine (:func:`transfer.copy_processes.default_processes`)."""
    if given is not None:
        return given
    return load_settings().copy_processes or default_processes()


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    node: str
    root: Path
    capacity: int
    concurrency: int = 16
    # Copy processes for small files (transfer.copy_processes), STAGEGATE_COPY_PROCESSES.
    copy_processes: int = 1
    # The defaults are the settings object's: one place says what an unset variable means.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS
    batch_max_files: int = DEFAULT_BATCH_MAX_FILES
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    bandwidth_limit: int | None = None
    # Where training runs write checkpoints, one directory per user (<runs_root>/<user>/...):
    # the service egresses only from there, and only a user's own runs.
    runs_root: Path | None = None
    # Where service egresses to a path may write, one directory per user (<egress_root>/<user>/).
    egress_root: Path | None = None
    # What a service staging may read (STAGEGATE_SOURCE_ROOTS, STAGEGATE_SOURCE_SCHEMES): S3
    # only unless the operator names local roots or more schemes.
    source_rules: SourceRules = field(default_factory=SourceRules)
    # The background scrub: bytes/s it re-hashes cached datasets at (0: off), and how long a
    # dataset stays trusted after its last scrub.
    scrub_rate: int = DEFAULT_SCRUB_RATE
    scrub_interval: float = DEFAULT_SCRUB_INTERVAL
    # The Kubernetes API asked whether a pin's owner is gone (None: not in a cluster, owned pins
    # are kept), the service account that asks, and how often each owner is asked.
    kube_api: str | None = None
    kube_token_file: Path | None = None
    kube_ca_file: Path | None = None
    owner_check_seconds: float = DEFAULT_OWNER_CHECK_SECONDS
    # Keep per-owner read-only views under <root>/views (bind mounts: CAP_SYS_ADMIN).
    views: bool = False
    # Identical requests share a plan while it runs and this long after (ledger.plan_shares).
    plan_fresh_seconds: float = DEFAULT_PLAN_FRESH_SECONDS
    # Shared plans used within this long are listed again in the background and stay fresh
    # while their source is unchanged (workers.plan_recheck; 0: off).
    plan_keep_warm_seconds: float = DEFAULT_PLAN_KEEP_WARM_SECONDS
    # The label re-scan of cached datasets: requests/s to the source (0: off), and how long a
    # dataset's labels stay trusted after their last re-read (workers.label_rescan).
    label_rescan_rate: float = DEFAULT_LABEL_RESCAN_RATE
    label_rescan_interval: float = DEFAULT_LABEL_RESCAN_INTERVAL
    # Peer fan-out: source readers per replicated staging, where this worker serves peers
    # (host, port; None: it serves none), the URL others reach it at, and the worker credential.
    fanout_readers: int = DEFAULT_FANOUT_READERS
    fanout_per_holder: int = DEFAULT_FANOUT_PER_HOLDER
    peer_listen: tuple[str, int] | None = None
    peer_url: str | None = None
    peer_secret: str | None = field(default=None, repr=False)
    # Bytes/s of copies from peers (None: uncapped); bandwidth_limit caps reads of the source.
    peer_bandwidth_limit: int | None = None

    @property
    def owner(self) -> str:
        """Who holds a lease: this process on this host."""
        return f"{self.node}@{socket.gethostname()}:{os.getpid()}"

    def peer_transfer_config(self) -> TransferConfig:
        """How a batch is copied from a peer: over the cluster fabric, under its own cap."""
        return replace(self.transfer_config(), bandwidth_limit=self.peer_bandwidth_limit)

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            processes=self.copy_processes,
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
        env = load_settings()
        secret = env.peer_credential()
        listen = None
        if env.peer_listen is not None:
            if secret is None:
                raise InvalidInputError(
                    "STAGEGATE_PEER_LISTEN needs a worker credential: set STAGEGATE_PEER_SECRET_FILE"
                )
            host, _, port = env.peer_listen.rpartition(":")
            listen = (host.strip("[]"), int(port))
        return cls(
            node=node,
            root=root,
            capacity=capacity,
            concurrency=concurrency,
            copy_processes=copy_processes(env.copy_processes),
            lease_seconds=env.lease_seconds,
            reconcile_seconds=env.reconcile_seconds,
            batch_max_files=env.batch_max_files,
            batch_max_bytes=env.batch_max_bytes,
            bandwidth_limit=env.bandwidth_limit,  # bytes per second, as --bandwidth
            runs_root=(env.runs_root or root / "runs").resolve(),
            egress_root=(env.egress_root or root / "egress").resolve(),
            source_rules=env.source_rules(),
            scrub_rate=env.scrub_rate,
            scrub_interval=env.scrub_interval,
            kube_api=env.kube_api_url(),
            kube_token_file=env.kube_token_file,
            kube_ca_file=env.kube_ca_file,
            owner_check_seconds=env.owner_check_seconds,
            views=env.views,
            plan_fresh_seconds=env.plan_fresh_seconds,
            plan_keep_warm_seconds=env.plan_keep_warm_seconds,
            label_rescan_rate=env.label_rescan_rate,
            label_rescan_interval=env.label_rescan_interval,
            fanout_readers=env.fanout_readers,
            fanout_per_holder=env.fanout_per_holder,
            peer_listen=listen,
            peer_url=(env.peer_url or f"http://{env.peer_listen}") if env.peer_listen else None,
            peer_secret=secret,
            peer_bandwidth_limit=env.peer_bandwidth_limit,
        ).checked()

    def checked(self) -> "WorkerSettings":
        """These settings, if no two of the node cache, the runs root and the egress root
        overlap: an egress must never write into the cache or into anyone's runs."""
        named = {
            "the node cache": self.root / "datasets",
            "the quarantine": self.root / "quarantine",
            "the trash": self.root / "trash",
            "the views": self.root / "views",
            RUNS_ROOT_ENV: self.runs_root or self.root / "runs",
            EGRESS_ROOT_ENV: self.egress_root or self.root / "egress",
        }
        items = list(named.items())
        for i, (what, path) in enumerate(items):
            for other, other_path in items[i + 1 :]:
                if path.is_relative_to(other_path) or other_path.is_relative_to(path):
                    raise InvalidInputError(
                        f"{what} ({path}) and {other} ({other_path}) overlap; "
                        "give each a directory of its own"
                    )
        return self

    def user_runs(self, user: str) -> Path:
        """The only directory this node's service egresses for ``user`` may read from."""
        return (self.runs_root or self.root / "runs") / user_segment(user)

    def user_egress(self, user: str) -> Path:
        """The only directory this node's service egresses for ``user`` may write to."""
        return (self.egress_root or self.root / "egress") / user_segment(user)


def user_segment(user: str) -> str:
    """``user`` as one path segment; a name that is not one (``..``, ``a/b``) has no directory."""
    if not user or user in (".", "..") or "/" in user or "\0" in user:
        raise PermissionError(f"user name {user!r} cannot name a directory on this node")
    return user
