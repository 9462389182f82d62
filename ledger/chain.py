"""The hash chain: how one audit event's hash commits to its content and to all before it.

``hash = sha256(prev_hash || canonical_json(every field but hash))`` (prev_hash as ASCII hex,
the JSON as UTF-8). Canonical JSON sorts keys, has no whitespace and keeps non-ASCII text
as is, so any language can recompute a hash from an exported line; times are ISO-8601 UTC
with microseconds, the precision both databases keep exactly.
"""

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

from stagegate.errors import InvalidInputError

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_json(value: object) -> str:
    # allow_nan=False: NaN and Infinity are not JSON, and other verifiers could not read them.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def event_hash(prev_hash: str, fields: Mapping[str, object]) -> str:
    """The hash of an event whose hashed fields (everything but ``hash``) are ``fields``."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(fields).encode("utf-8")).hexdigest()


def leaf_bytes(fields: Mapping[str, object]) -> bytes:
    """What an event is as a leaf of the Merkle tree (``ledger.merkle``): the very bytes its
    chain hash covers after prev_hash, so an exported JSONL line minus "hash" is the leaf."""
    return canonical_json(fields).encode("utf-8")


def format_head(head: tuple[int, str] | None) -> str:
    """A chain head as ``stagegate audit head`` prints it, ``SEQ:HASH``; an empty trail's is
    ``0:`` and the genesis hash."""
    return f"0:{GENESIS_HASH}" if head is None else f"{head[0]}:{head[1]}"


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as :func:`format_head` writes it; anything else is bad input, quoted."""
    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInputError(f"expected SEQ:HASH as `stagegate audit head` prints it, not {text!r}")
    return int(seq), digest
