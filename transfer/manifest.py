"""The manifest digest: a Merkle root over a dataset's entries in key order.

Two plans with the same digest name the same bytes (same keys, sizes, revisions), which
is what lets a node reuse a dataset it already holds. The tree is RFC 6962's (leaves
hashed with a 0x00 prefix, inner nodes with 0x01), built in one streaming pass holding
one hash per level, so a listing of millions of objects costs a few KiB.
"""

import hashlib
import json

from stagegate.transfer.errors import TransferError
from stagegate.transfer.objects import SourceObject


def entry_bytes(obj: SourceObject) -> bytes:
    """The canonical form of one entry: what the digest commits to."""
    fields = {
        "key": obj.key,
        "label": obj.label,
        "revision": obj.revision,
        "size": obj.size,
        "version": obj.version,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class ManifestDigest:
    """Accumulates entries (strictly ascending keys) into a Merkle root."""

    def __init__(self) -> None:
        # _stack[i] is the root of a perfect subtree of 2**_heights[i] leaves; heights fall.
        self._stack: list[bytes] = []
        self._heights: list[int] = []
        self._last_key: str | None = None
        self.count = 0

    def add(self, obj: SourceObject) -> None:
        if self._last_key is not None and obj.key <= self._last_key:
            what = "twice" if obj.key == self._last_key else "out of order"
            raise TransferError(f"source listed key {obj.key!r} {what}; listings must be sorted")
        self._last_key = obj.key
        self.count += 1
        digest, height = _leaf(entry_bytes(obj)), 0
        while self._heights and self._heights[-1] == height:
            digest = _node(self._stack.pop(), digest)
            self._heights.pop()
            height += 1
        self._stack.append(digest)
        self._heights.append(height)

    def hexdigest(self) -> str:
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        digest = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            digest = _node(left, digest)
        return digest.hex()
