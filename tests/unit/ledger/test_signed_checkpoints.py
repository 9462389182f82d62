"""ledger.signed_note, ledger.checkpoint_note and ledger.proof_bundle: the notes an auditor
checks offline. Any change to a signed byte, a wrong key, a tampered proof: refused."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.ledger.chain import GENESIS_HASH, event_hash, leaf_bytes
from stagegate.ledger.checkpoint_note import Checkpoint, open_checkpoint, parse_text, split_notes
from stagegate.ledger.merkle import CompactRange, inclusion_ranges, leaf_hash, range_hash
from stagegate.ledger.proof_bundle import InclusionBundle, check_bundle
from stagegate.ledger.signed_note import (
    NoteError,
    SignerKey,
    key_id,
    open_note,
    parse_signer,
    parse_verifier,
    sign,
)

ORIGIN = "example.org/audit"
WHEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KEY = SignerKey.generate(ORIGIN)
OTHER = SignerKey.generate(ORIGIN)  # a rotated key: same name, another id


def test_keys_round_trip_in_go_note_format() -> None:
    vkey = KEY.verifier().encode()
    name, ident, raw = vkey.split("+", 2)
    assert (name, int(ident, 16)) == (ORIGIN, KEY.id)
    assert base64.b64decode(raw)[0] == 1 and len(base64.b64decode(raw)) == 33
    assert key_id(ORIGIN, base64.b64decode(raw)[1:]) == KEY.id
    assert parse_verifier(vkey).encode() == vkey
    assert parse_signer(KEY.encode()).verifier().encode() == vkey
    assert KEY.encode().startswith("PRIVATE+KEY+example.org/audit+")


@pytest.mark.parametrize(
    "text", ["", "name", "name+0000+AAAA", "a b+00000000+" + "A" * 44, "name+zzzzzzzz+" + "A" * 44]
)
def test_a_malformed_public_key_is_bad_input(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_verifier(text)


def test_a_public_key_with_another_id_is_refused() -> None:
    name, _, raw = KEY.verifier().encode().split("+", 2)
    with pytest.raises(InvalidInputError, match="does not match"):
        parse_verifier(f"{name}+{(KEY.id ^ 1):08x}+{raw}")


def test_a_note_opens_with_its_key_and_not_with_another() -> None:
    note = sign("hello\nworld\n", KEY)
    assert note.startswith("hello\nworld\n\n\u2014 example.org/audit ")
    assert open_note(note, [OTHER.verifier(), KEY.verifier()]).text == "hello\nworld\n"
    with pytest.raises(NoteError, match="none of the keys given"):
        open_note(note, [OTHER.verifier()])


@settings(max_examples=200)
@given(st.data())
def test_any_bit_flip_in_a_signed_checkpoint_is_refused(data: st.DataObject) -> None:
    note = sign(Checkpoint(ORIGIN, 12, b"\x07" * 32, WHEN).text(), KEY).encode()
    bit = data.draw(st.integers(min_value=0, max_value=len(note) * 8 - 1))
    flipped = bytearray(note)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        text = flipped.decode()
    except UnicodeDecodeError:
        return  # not even text: nothing to open
    with pytest.raises(NoteError):
        open_checkpoint(text, [KEY.verifier()], ORIGIN)


def test_checkpoint_text_round_trips() -> None:
    cp = Checkpoint(ORIGIN, 12, b"\x07" * 32, WHEN)
    root = base64.b64encode(b"\x07" * 32).decode()
    assert cp.text() == f"{ORIGIN}\n12\n{root}\ntime 2026-12-01T10:00:00.000000Z\n"
    assert parse_text(cp.text()) == cp
    signed = open_checkpoint(sign(cp.text(), KEY), [KEY.verifier()])
    assert (signed.checkpoint, signed.key.id) == (cp, KEY.id)
    with pytest.raises(NoteError, match="not 'other/log'"):
        open_checkpoint(sign(cp.text(), KEY), [KEY.verifier()], "other/log")


@pytest.mark.parametrize(
    "text",
    [
        "o\n012\nAAAA\ntime x\n",
        "o\n1\n" + base64.b64encode(b"x" * 31).decode() + "\ntime 2026-12-01T10:00:00.000000Z\n",
        "o\n1\n" + base64.b64encode(b"x" * 32).decode() + "\n",
        "o\n1\n" + base64.b64encode(b"x" * 32).decode() + "\nwhen 2026\n",
    ],
)
def test_a_malformed_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_text(text)


def test_split_notes_reads_an_append_only_log() -> None:
    notes = [sign(Checkpoint(ORIGIN, n, bytes([n]) * 32, WHEN).text(), KEY) for n in (1, 2, 3)]
    assert split_notes("\n".join(notes)) == notes
    assert split_notes(notes[0]) == [notes[0]]


def _events(n: int) -> list[dict[str, object]]:
    out, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        fields: dict[str, object] = {
            "seq": seq, "time": (WHEN + timedelta(seconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": "alice", "role": "local", "action": "stage.completed", "job_id": None, "job_ref": None,
            "source": "s3://b/p", "destination": "/nvme/p", "bytes": seq, "files": 1,
            "manifest_digest": None, "policy_version": None, "decision": None, "reasons": [],
            "details": {}, "prev_hash": prev,
        }  # fmt: skip
        prev = event_hash(prev, fields)
        out.append({**fields, "hash": prev})
    return out


def _bundle(n: int, seq: int, key: SignerKey = KEY) -> tuple[InclusionBundle, list[dict[str, object]]]:
    events = _events(n)
    tree = CompactRange()
    nodes = {}
    for e in events:
        for made in tree.append(leaf_hash(leaf_bytes({k: v for k, v in e.items() if k != "hash"}))):
            nodes[made.level, made.index] = made.hash
    proof = tuple(range_hash(s, e, lambda lv, ix: nodes[lv, ix]) for s, e in inclusion_ranges(seq - 1, n))
    note = sign(Checkpoint(ORIGIN, n, tree.root(), WHEN).text(), key)
    return InclusionBundle(events[seq - 1], n, proof, note), events


@given(st.integers(min_value=1, max_value=40), st.data())
def test_a_proof_file_verifies_offline(n: int, data: st.DataObject) -> None:
    seq = data.draw(st.integers(min_value=1, max_value=n))
    bundle, _ = _bundle(n, seq)
    checked = check_bundle(bundle.to_json(), [KEY.verifier()], ORIGIN)
    assert (checked.seq, checked.checkpoint.checkpoint.size) == (seq, n)


def test_a_tampered_proof_file_is_refused() -> None:
    bundle, events = _bundle(9, 4)
    good = json.loads(bundle.to_json())

    def refused(changed: dict[str, object], match: str) -> None:
        with pytest.raises(NoteError, match=match):
            check_bundle(json.dumps(changed), [KEY.verifier()], ORIGIN)

    refused({**good, "event": {**good["event"], "bytes": 5}}, "hash does not match")
    # An event edited and re-hashed: its chain hash checks, but the tree does not contain it.
    forged = {k: v for k, v in good["event"].items() if k != "hash"} | {"bytes": 5}
    refused(
        {**good, "event": {**forged, "hash": event_hash(str(forged["prev_hash"]), forged)}}, "does not lead"
    )
    # Another event, with its own (real) hash, presented under this proof.
    refused({**good, "event": events[4], "leaf_index": 4}, "does not lead")
    proof = list(good["proof"])
    proof[1] = base64.b64encode(b"\x00" * 32).decode()
    refused({**good, "proof": proof}, "does not lead")
    refused({**good, "proof": good["proof"][:-1]}, "wrong shape|does not lead")
    refused({**good, "tree_size": 10}, "tree of 10")
    refused({**good, "leaf_index": 2}, "leaf_index")
    note = good["checkpoint"].replace("\n9\n", "\n10\n")
    refused({**good, "checkpoint": note, "tree_size": 10}, "does not verify")
    with pytest.raises(NoteError, match="none of the keys"):
        check_bundle(bundle.to_json(), [OTHER.verifier()], ORIGIN)
    with pytest.raises(NoteError, match="not JSON"):
        check_bundle("{", [KEY.verifier()])


def test_a_rotated_key_leaves_old_proofs_verifiable() -> None:
    old, _ = _bundle(5, 2, KEY)
    new, _ = _bundle(5, 2, OTHER)
    keys = [KEY.verifier(), OTHER.verifier()]
    assert check_bundle(old.to_json(), keys).checkpoint.key.id == KEY.id
    assert check_bundle(new.to_json(), keys).checkpoint.key.id == OTHER.id


def test_a_signature_in_another_spelling_of_the_same_bytes_is_refused() -> None:
    # The last base64 character before "=" has unused low bits: "...Q==" and "...R==" decode
    # alike. A note whose bytes changed must not open, even if its signature's bytes did not.
    note = sign(Checkpoint(ORIGIN, 12, b"\x07" * 32, WHEN).text(), KEY)
    signature_line = note.rstrip("\n").rpartition("\n")[2]
    blob = signature_line.rsplit(" ", 1)[1]
    assert blob.endswith("=")
    last = blob.rstrip("=")[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 1]
    respelled = blob.rstrip("=")[:-1] + twin + "=" * (len(blob) - len(blob.rstrip("=")))
    assert base64.b64decode(respelled) == base64.b64decode(blob)
    tampered = note.replace(blob, respelled)
    with pytest.raises(NoteError):
        open_checkpoint(tampered, [KEY.verifier()], ORIGIN)
