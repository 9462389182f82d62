"""Signed notes with Ed25519 keys, in the format of C2SP signed-note (Go's sumdb/note).

Pure: no I/O. A note is UTF-8 text ending in a newline, a blank line, then one line per
signature, ``— <key name> <base64(key id || signature)>``. A key id is the first four bytes
of SHA-256(name, ``\\n``, 0x01, public key), so a verifier picks the right key of several by
name and id, and a rotated key leaves old notes checkable by the old public key. Keys are
written as Go writes them: ``<name>+<id hex>+<base64(0x01 || public key)>`` for a verifier,
``PRIVATE+KEY+<name>+<id hex>+<base64(0x01 || seed)>`` for a signer.
"""

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from stagegate.errors import InvalidInputError, StagegateError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
PRIVATE_PREFIX = "PRIVATE+KEY+"
MAX_NOTE_BYTES = 1 << 20


class NoteError(StagegateError):
    """A note that is malformed, or that no given key signed: not to be trusted."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidInputError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


def key_id(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def canonical_b64decode(text: str) -> bytes:
    """``text`` as standard base64, accepted only in the one spelling ``b64encode`` gives: the
    unused low bits of a last character before ``=`` may otherwise be anything, so a flipped
    bit in a signed note would decode to the same bytes and pass (Go's ``Strict`` encoding
    refuses it too). Raises :class:`binascii.Error`."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise binascii.Error("not canonical base64")
    return raw


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class VerifierKey:
    name: str
    id: int
    public: Ed25519PublicKey

    def encode(self) -> str:
        raw = base64.b64encode(bytes([ALG_ED25519]) + _raw_public(self.public)).decode()
        return f"{self.name}+{self.id:08x}+{raw}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        try:
            self.public.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SignerKey:
    name: str
    id: int
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> "SignerKey":
        private = Ed25519PrivateKey.generate()
        return cls(_check_name(name), key_id(name, _raw_public(private.public_key())), private)

    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.id, self.private.public_key())

    def encode(self) -> str:
        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        raw = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"{PRIVATE_PREFIX}{self.name}+{self.id:08x}+{raw}"


def _key_parts(text: str, what: str) -> tuple[str, int, bytes]:
    name, _, rest = text.strip().partition("+")
    id_hex, _, raw_b64 = rest.partition("+")
    try:
        _check_name(name)
        if len(id_hex) != 8:
            raise ValueError("the key id is not 8 hex digits")
        ident = int(id_hex, 16)
        raw = canonical_b64decode(raw_b64)
    except (ValueError, binascii.Error, InvalidInputError) as exc:
        raise InvalidInputError(
            f"not a {what} key ('NAME+ID+BASE64' as `stagegate audit key` prints): {exc}"
        ) from None
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise InvalidInputError(f"not an Ed25519 {what} key: expected 0x01 and 32 bytes after the id")
    return name, ident, raw[1:]


def parse_verifier(text: str) -> VerifierKey:
    name, ident, raw = _key_parts(text, "public")
    public = Ed25519PublicKey.from_public_bytes(raw)
    if key_id(name, raw) != ident:
        raise InvalidInputError(f"public key {name}+{ident:08x}: the id does not match the key")
    return VerifierKey(name, ident, public)


def parse_signer(text: str) -> SignerKey:
    stripped = text.strip()
    if not stripped.startswith(PRIVATE_PREFIX):
        raise InvalidInputError(f"a signing key starts with {PRIVATE_PREFIX!r}")
    name, ident, raw = _key_parts(stripped[len(PRIVATE_PREFIX) :], "private")
    private = Ed25519PrivateKey.from_private_bytes(raw)
    if key_id(name, _raw_public(private.public_key())) != ident:
        raise InvalidInputError(f"signing key {name}+{ident:08x}: the id does not match the key")
    return SignerKey(name, ident, private)


def sign(text: str, key: SignerKey) -> str:
    """The note: ``text`` (non-empty lines, ending in a newline) signed by ``key``."""
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise ValueError("a note's text is non-empty lines, each ending in a newline")
    signature = key.private.sign(text.encode())
    blob = base64.b64encode(key.id.to_bytes(4, "big") + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{key.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class OpenedNote:
    text: str
    key: VerifierKey  # the first known key whose signature verified


def open_note(note: str, keys: Iterable[VerifierKey]) -> OpenedNote:
    """The text of ``note``, if one of ``keys`` signed it; :class:`NoteError` otherwise.
    Signatures by keys not given are ignored, as signed-note says."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError("the note is too large")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    known = {(k.name, k.id): k for k in keys}
    if not lines:
        raise NoteError("the note carries no signature")
    seen = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:80]!r}")
        name, _, blob_b64 = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            blob = canonical_b64decode(blob_b64)
        except binascii.Error:
            raise NoteError(f"signature by {name!r} is not base64") from None
        if len(blob) != 4 + 64:
            raise NoteError(f"signature by {name!r} is not an Ed25519 signature")
        ident = int.from_bytes(blob[:4], "big")
        seen.append(f"{name}+{ident:08x}")
        key = known.get((name, ident))
        if key is None:
            continue
        if not key.verifies(text.encode(), blob[4:]):
            raise NoteError(f"the signature by {name}+{ident:08x} does not verify: the note was altered")
        return OpenedNote(text, key)
    raise NoteError(f"signed by {', '.join(seen)}, none of the keys given")
