"""The text of a signed checkpoint: C2SP tlog-checkpoint, with one extension line for the time.

Pure: no I/O. The signed text is::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>
    time <UTC, 2026-12-01T10:00:00.000000Z>

then a blank line and the signature lines of :mod:`ledger.signed_note`. The origin names the
log; the key that signed it, by name and id, is in the signature line.
"""

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stagegate.ledger.chain import format_time, parse_time
from stagegate.ledger.merkle import HASH_SIZE
from stagegate.ledger.signed_note import NoteError, VerifierKey, canonical_b64decode, open_note

TIME_PREFIX = "time "
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a checkpoint commits to: the first ``size`` events of the log ``origin`` have the
    Merkle root ``root``, as of ``time``."""

    origin: str
    size: int
    root: bytes
    time: datetime

    def text(self) -> str:
        if not self.origin or "\n" in self.origin or self.origin != self.origin.strip():
            raise ValueError(f"an origin is one line without surrounding space: {self.origin!r}")
        if len(self.root) != HASH_SIZE or self.size < 0:
            raise ValueError("a checkpoint has a 32-byte root and a size of at least 0")
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n{TIME_PREFIX}{format_time(self.time)}\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str  # the whole signed note, exactly as published
    key: VerifierKey  # the key whose signature was checked


def parse_text(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) != 5 or lines[-1] != "":
        raise NoteError("a checkpoint is four lines: origin, size, root hash, time")
    origin, size, root_b64, when = lines[:4]
    if not origin:
        raise NoteError("the checkpoint names no origin")
    if not _SIZE.fullmatch(size):
        raise NoteError(f"the checkpoint's size is not a decimal number: {size[:40]!r}")
    try:
        root = canonical_b64decode(root_b64)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    if not when.startswith(TIME_PREFIX):
        raise NoteError("the checkpoint's fourth line is not its time")
    try:
        moment = parse_time(when[len(TIME_PREFIX) :])
    except ValueError:
        raise NoteError("the checkpoint's time is not UTC as 2026-12-01T10:00:00.000000Z") from None
    return Checkpoint(origin, int(size), root, moment)


def open_checkpoint(note: str, keys: Iterable[VerifierKey], origin: str | None = None) -> SignedCheckpoint:
    """The checkpoint in ``note``, once one of ``keys`` is found to have signed it (and, with
    ``origin``, once it is found to be of that log); :class:`NoteError` otherwise."""
    opened = open_note(note, keys)
    checkpoint = parse_text(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of the log {checkpoint.origin!r}, not {origin!r}")
    return SignedCheckpoint(checkpoint, note, opened.key)


def split_notes(text: str) -> list[str]:
    """The notes of a file holding one or more, each as ``stagegate audit checkpoint`` prints
    it (an append-only checkpoint log is such a file): a note ends at the first line after its
    signatures that is not a signature."""
    notes: list[str] = []
    current: list[str] = []
    in_signatures = False
    for line in text.splitlines(keepends=True):
        if in_signatures and not line.startswith("\u2014 "):
            notes.append("".join(current))
            current, in_signatures = [], False
            if line.strip() == "":
                continue
        if not in_signatures and line == "\n" and current:
            in_signatures = True
        current.append(line)
    if current and "".join(current).strip():
        notes.append("".join(current))
    return notes
