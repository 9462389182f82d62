"""Pure rules that turn an object key into a path under a dataset root, or refuse it.

A key is accepted only if it is a plain relative POSIX path: no absolute path, no ``.`` or
``..`` segment, no empty segment, no NUL or other control character, no bidirectional
control character (a right-to-left override makes ``gpj.exe`` read as ``exe.jpg``), no
backslash (which some consumers treat as a separator), valid Unicode, and not inside
``.stagegate/`` (reserved, see :data:`STATE_DIR`). Collisions after Unicode normalisation
are found by :class:`NormalizationGuard`.
"""

import re
import unicodedata
from collections.abc import Iterable

from stagegate.transfer.errors import UnsafeKeyError

# Reserved as a key's first segment: a staging's state once lived here, inside the dataset (a
# rerun moves it out, transfer.layout), and an egress keeps its temporary files in DEST/.stagegate.
STATE_DIR = ".stagegate"
MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux filesystems
MAX_KEY_BYTES = 4095  # PATH_MAX minus the terminator


# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), the implicit marks
# (U+200E, U+200F) and the Arabic letter mark (U+061C): they reorder how a name is displayed.
BIDI_CONTROLS = frozenset(
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
)


def _bidi_control(key: str) -> str | None:
    if key.isascii():
        return None
    return next((c for c in key if c in BIDI_CONTROLS), None)


_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")  # one C scan: keys are checked at every copy


def _has_control_character(key: str) -> bool:
    """C0, DEL and C1 (NEL, CSI...): line breaks and terminal escapes have no place in a name."""
    if key.isascii():
        return _ASCII_CONTROL.search(key) is not None
    return any(unicodedata.category(c) == "Cc" for c in key)


def key_parts(key: str) -> tuple[str, ...]:
    """Split ``key`` into path segments, raising :class:`UnsafeKeyError` if it is unsafe."""
    if not key:
        raise UnsafeKeyError(key, "empty key")
    if key.startswith("/"):
        raise UnsafeKeyError(key, "absolute key")
    if "\\" in key:
        raise UnsafeKeyError(key, "backslash in key")
    if _has_control_character(key):
        raise UnsafeKeyError(key, "NUL or control character in key")
    bidi = _bidi_control(key)
    if bidi is not None:
        raise UnsafeKeyError(key, f"bidirectional control character U+{ord(bidi):04X} in key")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeKeyError(key, "key is not valid Unicode") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise UnsafeKeyError(key, f"key longer than {MAX_KEY_BYTES} bytes")
    parts = tuple(key.split("/"))
    for part in parts:
        if part == "":
            raise UnsafeKeyError(key, "empty path segment")
        if part in (".", ".."):
            raise UnsafeKeyError(key, f"'{part}' path segment")
        if len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise UnsafeKeyError(key, f"path segment longer than {MAX_SEGMENT_BYTES} bytes")
    if parts[0] == STATE_DIR:
        raise UnsafeKeyError(key, f"'{STATE_DIR}/' is reserved for stagegate's own state")
    return parts


def is_directory_marker(key: str, size: int) -> bool:
    """True for the zero-byte ``prefix/`` objects consoles create to show a folder."""
    return size == 0 and key.endswith("/") and key.strip("/") != ""


class NormalizationGuard:
    """Finds keys that differ as strings but collide after Unicode normalisation (NFC).

    Two distinct keys with the same NFC form cannot both be in NFC, so only keys that are
    *not* NFC need remembering: memory is proportional to those (usually none), not to the
    listing. A collision between a non-NFC key and an NFC key seen earlier is found by
    :meth:`check_against`, a second pass over the (spilled) key stream.
    """

    def __init__(self) -> None:
        self._non_nfc: dict[str, str] = {}  # NFC form -> original key

    def add(self, key: str) -> None:
        normal = unicodedata.normalize("NFC", key)
        earlier = self._non_nfc.get(normal)
        if earlier is not None:
            raise UnsafeKeyError(key, f"collides with {earlier!r} after Unicode normalisation")
        if normal != key:
            self._non_nfc[normal] = key

    @property
    def needs_second_pass(self) -> bool:
        return bool(self._non_nfc)

    def check_against(self, keys: Iterable[str]) -> None:
        """Second pass: raise if any NFC key equals the NFC form of a non-NFC key."""
        for key in keys:
            other = self._non_nfc.get(key)
            if other is not None and other != key:
                raise UnsafeKeyError(other, f"collides with {key!r} after Unicode normalisation")
