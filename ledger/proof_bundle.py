"""An inclusion proof an auditor checks with no database: one event, its Merkle path, and the
signed checkpoint it leads to, in one JSON file.

Pure: no I/O. The file is::

    {"format": "stagegate-inclusion-proof/1",
     "event": {... the event as `stagegate audit export` writes it, with "hash"},
     "leaf_index": SEQ - 1, "tree_size": N,
     "proof": [base64 hashes, the leaf's sibling first],
     "checkpoint": "<the signed checkpoint note of N events>"}

:func:`check_bundle` trusts nothing in it but the public keys it is given.
"""

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stagegate.ledger.chain import canonical_json, event_hash, leaf_bytes
from stagegate.ledger.checkpoint_note import SignedCheckpoint, open_checkpoint
from stagegate.ledger.merkle import leaf_hash, root_from_inclusion
from stagegate.ledger.signed_note import NoteError, VerifierKey, canonical_b64decode

FORMAT = "stagegate-inclusion-proof/1"
MAX_BUNDLE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class InclusionBundle:
    event: Mapping[str, object]  # every hashed field and "hash", as exported
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint_note: str

    def to_json(self) -> str:
        seq = self.event["seq"]
        assert isinstance(seq, int)
        return canonical_json(
            {
                "format": FORMAT,
                "event": dict(self.event),
                "leaf_index": seq - 1,
                "tree_size": self.tree_size,
                "proof": [base64.b64encode(p).decode() for p in self.proof],
                "checkpoint": self.checkpoint_note,
            }
        )


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    seq: int
    event: Mapping[str, object]
    checkpoint: SignedCheckpoint


def parse_bundle(text: str) -> InclusionBundle:
    if len(text.encode()) > MAX_BUNDLE_BYTES:
        raise NoteError("the proof file is too large")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NoteError(f"the proof file is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NoteError(f"not a proof file of the format {FORMAT!r}")
    event, size, proof, note = (data.get(k) for k in ("event", "tree_size", "proof", "checkpoint"))
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int) or type(event["seq"]) is not int:
        raise NoteError("the proof file's event has no seq")
    if type(size) is not int or not isinstance(note, str) or not isinstance(proof, list):
        raise NoteError("the proof file needs tree_size, proof and checkpoint")
    if data.get("leaf_index") != event["seq"] - 1:
        raise NoteError("the proof's leaf_index is not the event's seq - 1")
    try:
        hashes = tuple(canonical_b64decode(p) for p in proof if isinstance(p, str))
    except binascii.Error:
        raise NoteError("a hash of the proof is not base64") from None
    if len(hashes) != len(proof):
        raise NoteError("a hash of the proof is not a string")
    return InclusionBundle(event, size, hashes, note)


def check_bundle(text: str, keys: Iterable[VerifierKey], origin: str | None = None) -> CheckedEvent:
    """The event of the proof file ``text``, once its checkpoint is found signed by one of
    ``keys`` and the event found in that checkpoint's tree; :class:`NoteError` naming what
    failed otherwise."""
    bundle = parse_bundle(text)
    signed = open_checkpoint(bundle.checkpoint_note, keys, origin)
    if bundle.tree_size != signed.checkpoint.size:
        raise NoteError(
            f"the proof is for a tree of {bundle.tree_size} events, "
            f"the checkpoint signs {signed.checkpoint.size}"
        )
    fields = {k: v for k, v in bundle.event.items() if k != "hash"}
    try:
        recomputed = event_hash(str(fields.get("prev_hash", "")), fields)
    except (TypeError, ValueError) as exc:
        raise NoteError(f"the event is not plain JSON: {exc}") from None
    if recomputed != bundle.event.get("hash"):
        raise NoteError("the event's hash does not match its content: the event was altered")
    seq = int(bundle.event["seq"])  # type: ignore[call-overload]
    root = root_from_inclusion(seq - 1, bundle.tree_size, leaf_hash(leaf_bytes(fields)), bundle.proof)
    if root is None:
        raise NoteError(f"the proof has the wrong shape for event {seq} of {bundle.tree_size}")
    if root != signed.checkpoint.root:
        raise NoteError(f"event {seq} with this proof does not lead to the checkpoint's root: altered")
    return CheckedEvent(seq, bundle.event, signed)
