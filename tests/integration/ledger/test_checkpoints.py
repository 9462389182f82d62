"""Signed checkpoints on each backend: signing extends the stored tree and never signs a
history that does not extend the last checkpoint; proofs from the stored tree check against
the signed root; key rotation leaves old checkpoints verifiable; the signing rules."""

from datetime import UTC, datetime, timedelta

import pytest

from integration.ledger.helpers import tamper
from stagegate.ledger import AuditTrail, Ledger, NewEvent
from stagegate.ledger import checkpoints as checkpoints_module
from stagegate.ledger.audit_tree import event_leaf
from stagegate.ledger.checkpoints import CheckpointError, Checkpoints
from stagegate.ledger.merkle import CompactRange
from stagegate.ledger.proof_bundle import check_bundle
from stagegate.ledger.signed_note import NoteError, SignerKey

ORIGIN = "test.example/audit"
KEY = SignerKey.generate(ORIGIN)
ROTATED = SignerKey.generate(ORIGIN)


def append(ledger: Ledger, count: int) -> None:
    trail = AuditTrail(ledger)
    for n in range(count):
        trail.append(NewEvent(actor="alice", role="local", action="stage.completed", bytes=n, files=1))


def signer(ledger: Ledger, key: SignerKey = KEY, **rules: object) -> Checkpoints:
    return Checkpoints(ledger, origin=ORIGIN, signer=lambda: key, **rules)  # type: ignore[arg-type]


def reference_root(ledger: Ledger) -> bytes:
    tree = CompactRange()
    for event in AuditTrail(ledger).events():
        tree.append(event_leaf(event))
    return tree.root()


def test_a_checkpoint_signs_the_root_of_every_event(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints_module, "TREE_BATCH", 4)  # the tree grows in several transactions
    append(ledger, 11)
    made = signer(ledger).sign()
    assert (made.size, made.root) == (11, reference_root(ledger))
    opened = made.opened([KEY.verifier()])
    assert (opened.checkpoint.size, opened.checkpoint.root, opened.key.id) == (11, made.root, KEY.id)
    assert signer(ledger).sign() == made  # nothing new: the same checkpoint
    append(ledger, 6)
    newer = signer(ledger).sign()
    assert (newer.size, newer.root) == (17, reference_root(ledger))
    assert signer(ledger).latest() == newer and signer(ledger).at(11) == made


def test_inclusion_proofs_check_against_the_signed_root(ledger: Ledger) -> None:
    append(ledger, 13)
    checkpoints = signer(ledger)
    checkpoints.sign()
    for seq in (1, 7, 12, 13):
        checked = check_bundle(checkpoints.inclusion(seq).to_json(), [KEY.verifier()], ORIGIN)
        assert checked.seq == seq and checked.event["bytes"] == seq - 1


def test_an_edited_event_gets_no_proof_that_checks(ledger: Ledger, ledger_url: str) -> None:
    append(ledger, 6)
    checkpoints = signer(ledger)
    checkpoints.sign()
    tamper(ledger_url, "UPDATE audit_events SET bytes = 999 WHERE seq = 4")
    with pytest.raises(NoteError, match="altered"):
        check_bundle(checkpoints.inclusion(4).to_json(), [KEY.verifier()], ORIGIN)


def test_signing_refuses_a_tree_that_no_longer_extends_the_last_checkpoint(
    ledger: Ledger, ledger_url: str
) -> None:
    append(ledger, 5)
    signer(ledger).sign()
    append(ledger, 3)
    # The subtree over events 1-4, which the next root is built on.
    tamper(
        ledger_url, "UPDATE audit_tree_nodes SET hash = :h WHERE level = 2 AND idx = 0", {"h": b"\x00" * 32}
    )
    with pytest.raises(CheckpointError, match="does not extend the checkpoint of 5"):
        signer(ledger).sign()
    assert signer(ledger).latest().size == 5  # type: ignore[union-attr]


def test_signing_refuses_rows_altered_before_they_were_signed(ledger: Ledger, ledger_url: str) -> None:
    append(ledger, 5)
    signer(ledger).sign()
    append(ledger, 2)
    tamper(ledger_url, "UPDATE audit_events SET bytes = 999 WHERE seq = 7")
    with pytest.raises(Exception, match="audit event 7 does not match its hash"):
        signer(ledger).sign()


def test_a_rotated_key_leaves_old_checkpoints_verifiable(ledger: Ledger) -> None:
    append(ledger, 4)
    old = signer(ledger, KEY).sign()
    append(ledger, 4)
    new = signer(ledger, ROTATED).sign()  # signing checks the old checkpoint with its kept key
    assert (old.key_id, new.key_id) == (KEY.id, ROTATED.id)
    assert [k.id for k in signer(ledger).public_keys()] == [KEY.id, ROTATED.id]
    assert signer(ledger).at(4).opened([KEY.verifier()]).checkpoint.size == 4
    with pytest.raises(NoteError):
        signer(ledger).at(4).opened([ROTATED.verifier()])
    # A proof against the old checkpoint still checks with the old key.
    bundle = signer(ledger).inclusion(2, signer(ledger).at(4))
    assert check_bundle(bundle.to_json(), [KEY.verifier(), ROTATED.verifier()]).checkpoint.key.id == KEY.id


def test_signing_rules(ledger: Ledger) -> None:
    now = [datetime.now(UTC)]
    by_count = signer(ledger, every_events=3, clock=lambda: now[0])
    assert by_count.sign_if_due() is None  # nothing to sign
    append(ledger, 2)
    assert by_count.sign_if_due() is None
    append(ledger, 1)
    assert by_count.sign_if_due().size == 3  # type: ignore[union-attr]
    by_time = signer(ledger, every_seconds=60, clock=lambda: now[0])
    append(ledger, 1)
    assert by_time.sign_if_due() is None
    now[0] += timedelta(seconds=61)
    assert by_time.sign_if_due().size == 4  # type: ignore[union-attr]
    now[0] += timedelta(seconds=600)
    assert by_time.sign_if_due() is None  # nothing new since: nothing to sign


def test_no_key_signs_nothing_and_says_so(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    from stagegate.ledger.signing_key import NoSigningKeyError

    def no_key() -> SignerKey:
        raise NoSigningKeyError("no checkpoint signing key")

    append(ledger, 2)
    checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=no_key, every_events=1)
    assert checkpoints.sign_if_due() is None
    assert "not being signed" in caplog.text
