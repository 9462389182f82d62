"""Tests for transfer.keys: which keys are safe paths, and NFC collision detection."""

import os
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.transfer.errors import UnsafeKeyError
from stagegate.transfer.keys import (
    BIDI_CONTROLS,
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    STATE_DIR,
    NormalizationGuard,
    is_directory_marker,
    key_parts,
)

ROOT = "/srv/datasets/root"

# Characters a safe segment may hold: anything printable-ish except separators, control
# characters (Cc), lone surrogates (Cs) and bidirectional controls.
BIDI = sorted(BIDI_CONTROLS)
segment_chars = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=["/", "\\", *BIDI])
segments = st.text(segment_chars, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
valid_keys = (
    st.lists(segments, min_size=1, max_size=6).map("/".join).filter(lambda k: k.split("/")[0] != STATE_DIR)
)


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def refused(key: str) -> UnsafeKeyError:
    with pytest.raises(UnsafeKeyError) as info:
        key_parts(key)
    return info.value


def landing_path(parts: tuple[str, ...]) -> str:
    return os.path.normpath(os.path.join(ROOT, *parts))


def assert_safe_segments(key: str, parts: tuple[str, ...]) -> None:
    assert parts, key
    assert "/".join(parts) == key
    for part in parts:
        assert part
        assert part not in (".", "..")
        assert "/" not in part
        assert "\\" not in part
        assert "\x00" not in part
        assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in part)
        assert not any(unicodedata.category(c) == "Cs" for c in part)
        assert not BIDI_CONTROLS.intersection(part)
        assert len(part.encode("utf-8")) <= MAX_SEGMENT_BYTES
    assert parts[0] != STATE_DIR


# --- accepted keys -------------------------------------------------------------------


@settings(max_examples=200)
@given(valid_keys)
def test_generated_valid_keys_are_accepted_and_split_on_slashes(key: str) -> None:
    parts = key_parts(key)
    assert parts == tuple(key.split("/"))
    assert_safe_segments(key, parts)


@settings(max_examples=200)
@given(valid_keys)
def test_valid_key_never_escapes_the_root(key: str) -> None:
    path = landing_path(key_parts(key))
    assert os.path.commonpath([ROOT, path]) == ROOT
    assert path != ROOT


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_accepted_text_is_safe(key: str) -> None:
    try:
        parts = key_parts(key)
    except UnsafeKeyError:
        return
    assert_safe_segments(key, parts)
    path = landing_path(parts)
    assert os.path.commonpath([ROOT, path]) == ROOT
    assert path != ROOT


@settings(max_examples=300)
@given(st.text(alphabet="./\\a\x00", max_size=12))
def test_dot_slash_soup_is_accepted_only_when_safe(key: str) -> None:
    """A small alphabet of dangerous characters finds traversal tricks quickly."""
    try:
        parts = key_parts(key)
    except UnsafeKeyError:
        return
    assert_safe_segments(key, parts)
    assert os.path.commonpath([ROOT, landing_path(parts)]) == ROOT


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "a/b/c.txt",
        "...",
        ".hidden",
        "a/.../b",
        "..a/b..",
        ".stagegate-not-reserved/x",
        "x/.stagegate/y",
        "caf\u00e9/\U0001f600.bin",
        "with space/and more ",
    ],
)
def test_plain_relative_keys_are_accepted(key: str) -> None:
    assert key_parts(key) == tuple(key.split("/"))


def test_segment_length_limit_is_in_utf8_bytes_and_inclusive() -> None:
    assert key_parts("a" * MAX_SEGMENT_BYTES) == ("a" * MAX_SEGMENT_BYTES,)
    # 'é' is two bytes in UTF-8: 127 of them fit, 128 do not
    assert key_parts("\u00e9" * 127)
    refused("\u00e9" * 128)
    refused("a" * (MAX_SEGMENT_BYTES + 1))
    refused("ok/" + "b" * (MAX_SEGMENT_BYTES + 1) + "/ok")


def test_whole_key_length_limit() -> None:
    segment = "s" * 100
    key = "/".join([segment] * 40)  # 40 * 100 + 39 = 4039 bytes
    key += "/" + "t" * (MAX_KEY_BYTES - len(key) - 1)
    assert len(key.encode()) == MAX_KEY_BYTES
    assert key_parts(key)
    refused(key + "t")


# --- refused keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/",
        "/etc/passwd",
        "//server/share",
        "..",
        ".",
        "../x",
        "a/../../x",
        "a/..",
        "a/./b",
        "./a",
        "a//b",
        "a/",
        "a/b/",
        "a\\b",
        "..\\..\\x",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\x1bb",
        "a\x7fb",
        STATE_DIR,
        f"{STATE_DIR}/manifest.jsonl",
        f"{STATE_DIR}/journal/x",
        "bad\udcff",
        "\ud800",
        "ok/\udfff/ok",
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    exc = refused(key)
    assert exc.key == key
    assert exc.reason
    assert isinstance(exc, ValueError)
    assert isinstance(exc, InvalidInputError)


def test_lone_surrogate_from_fsdecode_is_refused() -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes on a UTF-8 system
    assert "\udce9" in name
    refused(name)
    refused("dir/" + name)


def test_c1_control_characters_are_refused() -> None:
    """The contract says "no NUL or other control character". C1 controls (category Cc,
    U+0080..U+009F) include NEL (a line break) and CSI (starts terminal escape sequences)."""
    accepted = []
    for code in range(0x80, 0xA0):
        assert unicodedata.category(chr(code)) == "Cc"
        try:
            key_parts(f"a{chr(code)}b")
        except UnsafeKeyError:
            continue
        accepted.append(f"U+{code:04X}")
    assert accepted == [], f"control characters accepted in keys: {accepted}"


@given(valid_keys, st.data())
def test_dotdot_segment_anywhere_is_refused(key: str, data: st.DataObject) -> None:
    parts = key.split("/")
    at = data.draw(st.integers(0, len(parts)), label="at")
    dots = data.draw(st.sampled_from([".", ".."]), label="dots")
    refused("/".join([*parts[:at], dots, *parts[at:]]))


@given(valid_keys)
def test_absolute_keys_are_refused(key: str) -> None:
    refused("/" + key)


@given(valid_keys, st.data())
def test_empty_segment_anywhere_is_refused(key: str, data: st.DataObject) -> None:
    parts = key.split("/")
    at = data.draw(st.integers(1, len(parts)), label="at")
    refused("/".join([*parts[:at], "", *parts[at:]]))


@given(
    valid_keys,
    st.data(),
    st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f", "\\"]),
)
def test_control_char_or_backslash_anywhere_is_refused(key: str, data: st.DataObject, bad: str) -> None:
    at = data.draw(st.integers(0, len(key)), label="at")
    refused(key[:at] + bad + key[at:])


def test_the_bidirectional_controls_are_exactly_these() -> None:
    expected = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}
    assert {ord(c) for c in BIDI_CONTROLS} == expected


def test_right_to_left_override_is_refused_and_named() -> None:
    exc = refused("invoices/report\u202egpj.exe")
    assert "U+202E" in exc.reason and "bidirectional" in exc.reason


@given(valid_keys, st.data(), st.sampled_from(BIDI))
def test_bidi_control_anywhere_is_refused(key: str, data: st.DataObject, bad: str) -> None:
    at = data.draw(st.integers(0, len(key)), label="at")
    exc = refused(key[:at] + bad + key[at:])
    assert f"U+{ord(bad):04X}" in exc.reason


@given(valid_keys, st.data(), st.integers(0xD800, 0xDFFF).map(chr))
def test_lone_surrogate_anywhere_is_refused(key: str, data: st.DataObject, bad: str) -> None:
    at = data.draw(st.integers(0, len(key)), label="at")
    refused(key[:at] + bad + key[at:])


@given(valid_keys)
def test_state_dir_as_first_segment_is_refused(key: str) -> None:
    refused(f"{STATE_DIR}/{key}")


@given(st.text(segment_chars, min_size=1, max_size=80).filter(lambda s: s not in (".", "..")))
def test_segment_byte_length_decides(segment: str) -> None:
    size = len(segment.encode("utf-8"))
    long = segment * (MAX_SEGMENT_BYTES // size + 1)
    assume(len(long.encode()) <= MAX_KEY_BYTES)
    refused(long)
    refused("dir/" + long)
    fits = segment * (MAX_SEGMENT_BYTES // size)
    assert key_parts("dir/" + fits) == ("dir", fits)


# --- directory markers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "size", "expected"),
    [
        ("a/", 0, True),
        ("a/b/", 0, True),
        ("a/", 1, False),
        ("a", 0, False),
        ("a/b", 0, False),
        ("", 0, False),
        ("/", 0, False),
        ("//", 0, False),
    ],
)
def test_is_directory_marker(key: str, size: int, expected: bool) -> None:
    assert is_directory_marker(key, size) is expected


@given(valid_keys, st.integers(min_value=0, max_value=2**40))
def test_directory_marker_needs_trailing_slash_and_zero_size(key: str, size: int) -> None:
    assert is_directory_marker(key + "/", size) is (size == 0)
    assert is_directory_marker(key, size) is False


# --- normalisation guard --------------------------------------------------------------


def guard_rejects(keys: list[str]) -> bool:
    """The full protocol plan.py uses: add every key, then a second pass if needed."""
    guard = NormalizationGuard()
    try:
        for key in keys:
            guard.add(key)
        if guard.needs_second_pass:
            guard.check_against(keys)
    except UnsafeKeyError as exc:
        assert exc.key in keys
        return True
    return False


def test_guard_accepts_nfc_distinct_keys_without_second_pass() -> None:
    keys = ["caf\u00e9", "cafe", "na\u00efve", "a/b"]
    guard = NormalizationGuard()
    for key in keys:
        guard.add(key)
    assert not guard.needs_second_pass
    guard.check_against(keys)


def test_guard_accepts_a_lone_non_nfc_key() -> None:
    keys = ["cafe\u0301", "other"]
    assert not guard_rejects(keys)


@pytest.mark.parametrize(
    "keys",
    [
        ["caf\u00e9", "cafe\u0301"],  # NFC first: only the second pass sees it
        ["cafe\u0301", "caf\u00e9"],  # NFD first: add() sees it
        ["\u212b", "\u00c5"],  # ANGSTROM SIGN vs LATIN CAPITAL A WITH RING
        ["\u212b", "A\u030a"],  # two non-NFC spellings of the same key
        ["d/caf\u00e9/x", "d/cafe\u0301/x"],
        ["\u1100\u1161", "\uac00"],  # Hangul jamo vs precomposed syllable
    ],
)
def test_guard_finds_collisions_in_either_order(keys: list[str]) -> None:
    assert guard_rejects(keys)
    assert guard_rejects(list(reversed(keys)))


def test_nfc_first_collision_needs_the_second_pass() -> None:
    guard = NormalizationGuard()
    guard.add("caf\u00e9")
    guard.add("cafe\u0301")  # not raised yet: the NFC key was not remembered
    assert guard.needs_second_pass
    with pytest.raises(UnsafeKeyError):
        guard.check_against(["caf\u00e9", "cafe\u0301"])


def test_second_pass_without_the_nfc_key_passes() -> None:
    guard = NormalizationGuard()
    guard.add("cafe\u0301")
    guard.check_against(["cafe\u0301", "cafe", "caf"])


COMBINING_ALPHABET = [
    "a",
    "e",
    "c",
    "A",
    "/",
    "\u0301",  # combining acute
    "\u0327",  # combining cedilla
    "\u0308",  # combining diaeresis
    "\u030a",  # combining ring above
    "\u00e9",  # é
    "\u00e7",  # ç
    "\u00c5",  # Å
    "\u212b",  # Angstrom sign
    "\u1e09",  # ḉ
    "\u1100",  # Hangul choseong kiyeok
    "\u1161",  # Hangul jungseong a
    "\uac00",  # 가
]


@settings(max_examples=300)
@given(
    st.lists(
        st.lists(st.sampled_from(COMBINING_ALPHABET), min_size=1, max_size=4).map("".join),
        unique=True,
        max_size=8,
    )
)
def test_guard_rejects_exactly_when_two_distinct_keys_share_an_nfc_form(
    keys: list[str],
) -> None:
    collides = len({nfc(k) for k in keys}) < len(keys)
    assert guard_rejects(keys) is collides
    assert guard_rejects(sorted(keys)) is collides
