"""Audit events as callers see them: plain dataclasses, never database rows."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, cast

from stagegate.errors import InvalidInputError
from stagegate.ledger.chain import format_time

Decision = Literal["allow", "deny"]
DECISIONS: tuple[str, ...] = ("allow", "deny")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """What a caller asks to record. The trail assigns seq, time and the hashes; it redacts
    ``source``, ``destination`` and ``details`` before anything is stored."""

    actor: str
    role: str
    action: str
    source: str = ""
    destination: str = ""
    bytes: int = 0
    files: int = 0
    job_id: str | None = None
    job_ref: str | None = None
    manifest_digest: str | None = None
    policy_version: str | None = None
    decision: Decision | None = None
    reasons: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("actor", "role", "action"):
            if not getattr(self, name):
                raise InvalidInputError(f"an audit event needs a non-empty {name}")
        if self.decision is not None and self.decision not in DECISIONS:
            raise InvalidInputError(f"decision must be one of {DECISIONS}, not {self.decision!r}")
        if self.bytes < 0 or self.files < 0:
            raise InvalidInputError("bytes and files cannot be negative")
        if isinstance(cast(object, self.reasons), str):  # a lone string would be stored one letter per reason
            raise InvalidInputError("reasons must be a sequence of strings, not a string")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded event, exactly as stored and hashed."""

    seq: int
    time: datetime
    actor: str
    role: str
    action: str
    job_id: str | None
    job_ref: str | None
    source: str
    destination: str
    bytes: int
    files: int
    manifest_digest: str | None
    policy_version: str | None
    decision: str | None
    reasons: tuple[str, ...]
    details: Mapping[str, object]
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict[str, object]:
        """Every field but ``hash``, in JSON types: what ``hash`` commits to."""
        return {
            "seq": self.seq,
            "time": format_time(self.time),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "job_id": self.job_id,
            "job_ref": self.job_ref,
            "source": self.source,
            "destination": self.destination,
            "bytes": self.bytes,
            "files": self.files,
            "manifest_digest": self.manifest_digest,
            "policy_version": self.policy_version,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
        }

    def to_json(self) -> dict[str, object]:
        return {**self.hashed_fields(), "hash": self.hash}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the trail as it is stored: its seq and the event it holds, or, where the row
    no longer decodes (edited by hand), why not. Walks over the chain must see such a row."""

    seq: int
    event: AuditEvent | None
    unreadable: str | None = None  # why the row does not decode; set exactly when event is None


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The outcome of walking the chain.

    ``problem`` is one of "altered row" (a row's recomputed hash differs), "missing row" (a
    seq is absent; ``first_bad_seq`` is the first missing seq), "broken link" (a row's
    prev_hash is not its predecessor's hash) or "head mismatch" (the row at an anchored head's
    seq has another hash). ``checked`` counts the rows found good before the first problem.
    """

    intact: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    detail: str | None = None


class JobLike(Protocol):
    """What an event about a job copies from it: a ``JobRow`` or a ``Job`` alike."""

    id: str
    actor: str
    role: str
    source: str
    destination: str
    job_ref: str | None
    policy_version: str | None
    manifest_digest: str | None
    files: int
    bytes: int


def job_event(job: JobLike, action: str, **fields: object) -> NewEvent:
    """The event ``action`` about ``job``: who asked, what moves where, under which policy."""
    return NewEvent(
        actor=job.actor,
        role=job.role,
        action=action,
        source=job.source,
        destination=job.destination,
        job_id=job.id,
        job_ref=job.job_ref,
        policy_version=job.policy_version,
        manifest_digest=job.manifest_digest,
        files=job.files,
        bytes=job.bytes,
        **fields,  # type: ignore[arg-type]
    )
