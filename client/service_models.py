"""What the service returns, as typed, immutable values parsed from its JSON.

Parsing is lenient about what may be missing (a newer or older server may add or drop a
field; the client should still show what it has) and strict about types (a string where a
number belongs is a bug worth a clear error, not a wrong number on screen). Only ``id`` and
``state`` of a staging and ``name`` of a node are required.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagegate.client.errors import TERMINAL_STATES, ServiceProtocolError
from stagegate.ledger import AuditEvent
from stagegate.states import DatasetState, NodeStagingState

# TokenInfo and UsageRow live beside the ledger's queries (SQLAlchemy, the tables), which
# `stagegate status` and the other commands that parse a staging never need: imported on use.
if TYPE_CHECKING:
    from stagegate.ledger.tokens import TokenInfo
    from stagegate.ledger.usage import UsageRow


class _Fields:
    """Typed reads from one JSON object; errors name the field by its path."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ServiceProtocolError(f"unexpected answer from the server: {where} is not a JSON object")
        self.data: Mapping[str, Any] = data
        self.where = where

    def _bad(self, key: str, what: str) -> ServiceProtocolError:
        return ServiceProtocolError(f"unexpected answer from the server: {self.where}.{key} is not {what}")

    def required_text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a non-empty string")
        return value

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.data.get(key) is not None else None

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        return self.integer(key) if self.data.get(key) is not None else None

    def opt_number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def time(self, key: str) -> datetime | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(key, "an ISO-8601 time")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise self._bad(key, "an ISO-8601 time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)

    def objects(self, key: str) -> list["_Fields"]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return [_Fields(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value)]

    def child(self, key: str) -> "_Fields":
        return _Fields(self.data.get(key) or {}, f"{self.where}.{key}")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True, slots=True)
class StagingProgress:
    """Totals over all nodes of a staging; the rate and ETA are the server's estimate."""

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    rate_bytes_per_s: float | None = None
    eta_seconds: float | None = None
    listed_objects: int | None = None  # while planning: objects listed so far
    listed_bytes: int | None = None

    @classmethod
    def parse(cls, f: _Fields) -> "StagingProgress":
        return cls(
            files_done=f.integer("files_done"),
            files_total=f.integer("files_total"),
            bytes_done=f.integer("bytes_done"),
            bytes_total=f.integer("bytes_total"),
            rate_bytes_per_s=f.opt_number("rate_bytes_per_s"),
            eta_seconds=f.opt_number("eta_seconds"),
            listed_objects=f.opt_integer("listed_objects"),
            listed_bytes=f.opt_integer("listed_bytes"),
        )


@dataclass(frozen=True, slots=True)
class NodeStaging:
    """One node's part of a staging: its state, where the dataset lies, how far it got."""

    node: str
    state: str
    path: str | None = None
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    cache_hit: bool = False

    @classmethod
    def parse(cls, f: _Fields) -> "NodeStaging":
        return cls(
            node=f.required_text("node"),
            state=f.text("state", NodeStagingState.PENDING),
            path=f.opt_text("path"),
            files_done=f.integer("files_done"),
            files_total=f.integer("files_total"),
            bytes_done=f.integer("bytes_done"),
            bytes_total=f.integer("bytes_total"),
            cache_hit=f.flag("cache_hit"),
        )


@dataclass(frozen=True, slots=True)
class Pin:
    """How long the staging's nodes hold its data: the service releases it at ``expires_at``."""

    ttl_seconds: int
    expires_at: datetime | None
    renewed_at: datetime | None = None
    renewals: int = 0

    @classmethod
    def parse(cls, f: _Fields) -> "Pin | None":
        if not f.data:
            return None
        return cls(
            ttl_seconds=f.integer("ttl_seconds"),
            expires_at=f.time("expires_at"),
            renewed_at=f.time("renewed_at"),
            renewals=f.integer("renewals"),
        )


@dataclass(frozen=True, slots=True)
class Staging:
    """A staging as the service last described it. ``raw`` is the JSON it came from."""

    id: str
    state: str
    source: str = ""
    mode: str = "replicate"
    job: str | None = None
    user: str = ""
    project: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    digest: str | None = None
    progress: StagingProgress = StagingProgress()
    nodes: tuple[NodeStaging, ...] = ()
    errors: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    pin: Pin | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        """True once the state can no longer change: ready, failed, denied or released."""
        return self.state in TERMINAL_STATES

    @property
    def nodes_ready(self) -> int:
        return sum(1 for n in self.nodes if n.state == NodeStagingState.READY)

    @classmethod
    def from_json(cls, data: object) -> "Staging":
        f = _Fields(data, "staging")
        return cls(
            id=f.required_text("id"),
            state=f.required_text("state"),
            source=f.text("source"),
            mode=f.text("mode", "replicate"),
            job=f.opt_text("job"),
            user=f.text("user"),
            project=f.opt_text("project"),
            created_at=f.time("created_at"),
            updated_at=f.time("updated_at"),
            digest=f.opt_text("digest"),
            progress=StagingProgress.parse(f.child("progress")),
            nodes=tuple(NodeStaging.parse(n) for n in f.objects("nodes")),
            errors=f.texts("errors"),
            reasons=f.texts("reasons"),
            pin=Pin.parse(f.child("pin")),
            raw=dict(f.data),
        )

    def _listing(self) -> dict[str, int]:
        p = self.progress
        if p.listed_objects is None:
            return {}
        return {"listed_objects": p.listed_objects, "listed_bytes": p.listed_bytes or 0}

    def to_json(self) -> dict[str, Any]:
        """The server's JSON as received; for a staging built in code, the same shape."""
        built: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "source": self.source,
            "mode": self.mode,
            "job": self.job,
            "user": self.user,
            "project": self.project,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "digest": self.digest,
            "progress": {
                "files_done": self.progress.files_done,
                "files_total": self.progress.files_total,
                "bytes_done": self.progress.bytes_done,
                "bytes_total": self.progress.bytes_total,
                "rate_bytes_per_s": self.progress.rate_bytes_per_s,
                "eta_seconds": self.progress.eta_seconds,
                **self._listing(),
            },
            "nodes": [
                {
                    "node": n.node,
                    "state": n.state,
                    "path": n.path,
                    "files_done": n.files_done,
                    "files_total": n.files_total,
                    "bytes_done": n.bytes_done,
                    "bytes_total": n.bytes_total,
                    "cache_hit": n.cache_hit,
                }
                for n in self.nodes
            ],
            "errors": list(self.errors),
            "reasons": list(self.reasons),
            "pin": None
            if self.pin is None
            else {
                "ttl_seconds": self.pin.ttl_seconds,
                "expires_at": _iso(self.pin.expires_at),
                "renewed_at": _iso(self.pin.renewed_at),
                "renewals": self.pin.renewals,
            },
        }
        return {**built, **self.raw}


@dataclass(frozen=True, slots=True)
class CachedDataset:
    """A dataset in a node's cache."""

    digest: str
    path: str = ""
    bytes: int = 0
    files: int = 0
    state: str = DatasetState.READY
    pins: int = 0
    last_used: datetime | None = None

    @classmethod
    def parse(cls, f: _Fields) -> "CachedDataset":
        return cls(
            digest=f.required_text("digest"),
            path=f.text("path"),
            bytes=f.integer("bytes"),
            files=f.integer("files"),
            state=f.text("state", DatasetState.READY),
            pins=f.integer("pins"),
            last_used=f.time("last_used"),
        )


@dataclass(frozen=True, slots=True)
class Node:
    """A node worker as last heard from. ``capacity`` and ``free`` are None when unlimited."""

    name: str
    root: str = ""
    capacity: int | None = None
    used: int = 0
    pinned: int = 0
    free: int | None = None
    last_heartbeat: datetime | None = None
    alive: bool = False
    datasets: tuple[CachedDataset, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: object) -> "Node":
        f = _Fields(data, "node")
        return cls(
            name=f.required_text("name"),
            root=f.text("root"),
            capacity=f.opt_integer("capacity"),
            used=f.integer("used"),
            pinned=f.integer("pinned"),
            free=f.opt_integer("free"),
            last_heartbeat=f.time("last_heartbeat"),
            alive=f.flag("alive"),
            datasets=tuple(CachedDataset.parse(d) for d in f.objects("datasets")),
            raw=dict(f.data),
        )

    def to_json(self) -> dict[str, Any]:
        built: dict[str, Any] = {
            "name": self.name,
            "root": self.root,
            "capacity": self.capacity,
            "used": self.used,
            "pinned": self.pinned,
            "free": self.free,
            "last_heartbeat": _iso(self.last_heartbeat),
            "alive": self.alive,
            "datasets": [
                {
                    "digest": d.digest,
                    "path": d.path,
                    "bytes": d.bytes,
                    "files": d.files,
                    "state": d.state,
                    "pins": d.pins,
                    "last_used": _iso(d.last_used),
                }
                for d in self.datasets
            ],
        }
        return {**built, **self.raw}


def audit_event(data: object, where: str) -> AuditEvent:
    """One event of ``GET /v1/audit``: every field the chain hashes, and the hash, so the
    client shows (and exports) exactly what a local ledger would."""
    f = _Fields(data, where)
    moment = f.time("time")
    if moment is None:
        raise f._bad("time", "an ISO-8601 time")
    details = f.data.get("details") or {}
    if not isinstance(details, Mapping):
        raise f._bad("details", "a JSON object")
    return AuditEvent(
        seq=f.integer("seq"),
        time=moment,
        actor=f.required_text("actor"),
        role=f.text("role"),
        action=f.required_text("action"),
        job_id=f.opt_text("job_id"),
        job_ref=f.opt_text("job_ref"),
        source=f.text("source"),
        destination=f.text("destination"),
        bytes=f.integer("bytes"),
        files=f.integer("files"),
        manifest_digest=f.opt_text("manifest_digest"),
        policy_version=f.opt_text("policy_version"),
        decision=f.opt_text("decision"),
        reasons=f.texts("reasons"),
        details=dict(details),
        prev_hash=f.text("prev_hash"),
        hash=f.text("hash"),
    )


def usage_row(data: object, where: str) -> "UsageRow":
    """One row of ``GET /v1/usage``. A server that reports only the old ``bytes_staged`` (moved
    and reused bytes in one figure) is refused by name: splitting it is not possible here, and
    showing it as either column would be wrong."""
    f = _Fields(data, where)
    if "bytes_staged" in f.data and "bytes_from_source" not in f.data:
        raise ServiceProtocolError(
            f"unexpected answer from the server: {where} has bytes_staged but no bytes_from_source "
            "(an older stagegate service, which counts cache hits as staged bytes): upgrade the service, "
            "or read the ledger with --local"
        )
    from stagegate.ledger.usage import UsageRow

    return UsageRow(
        period=f.required_text("period"),
        key=f.required_text("key"),
        bytes_from_source=f.integer("bytes_from_source"),
        bytes_from_peers=f.integer("bytes_from_peers"),
        bytes_from_cache=f.integer("bytes_from_cache"),
        bytes_egressed=f.integer("bytes_egressed"),
        nvme_gb_hours=f.opt_number("nvme_gb_hours") or 0.0,
        stagings=f.integer("stagings"),
        egresses=f.integer("egresses"),
    )


def token_info(data: object, where: str) -> "TokenInfo":
    """One token of ``GET /v1/tokens``: never a secret (the server sends none)."""
    f = _Fields(data, where)
    created = f.time("created_at")
    if created is None:
        raise f._bad("created_at", "an ISO-8601 time")
    from stagegate.ledger.tokens import TokenInfo

    return TokenInfo(
        id=f.required_text("id"),
        user=f.required_text("user"),
        role=f.required_text("role"),
        project=f.opt_text("project"),
        created_at=created,
        last_used_at=f.time("last_used_at"),
        revoked_at=f.time("revoked_at"),
    )
