"""``stagegate audit checkpoint|prove|verify-proof|key`` and ``audit verify --checkpoint``: signed
checkpoints, and the checks an auditor runs with nothing but a checkpoint and a public key."""

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stagegate.client import context
from stagegate.client.errors import EXIT_TAMPERED
from stagegate.client.read_from import ledger_here, service_or_local, where_from
from stagegate.errors import InvalidInputError
from stagegate.settings import load_settings

# `stagegate --help` and `audit --help` define these commands without running them: the
# checkpoint machinery (the ledger's tables, the signer's cryptography) is imported in each.
if TYPE_CHECKING:
    from stagegate.ledger.signed_note import VerifierKey

MAX_FILE_BYTES = 64 << 20


def _read(path: str, what: str) -> str:
    try:
        with Path(path).open(encoding="utf-8") as f:
            return f.read(MAX_FILE_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the {what} {path}: {exc}") from None


def public_keys(values: tuple[str, ...]) -> list["VerifierKey"]:
    """``--public-key`` values: each a key (``NAME+ID+BASE64``) or a file of them, one a line."""
    from stagegate.ledger.signed_note import parse_verifier

    keys = []
    for value in values:
        text = _read(value, "public key file") if Path(value).is_file() else value
        keys += [parse_verifier(line) for line in text.splitlines() if line.strip()]
    return keys


def _tampered(lines: list[str]) -> click.exceptions.Exit:
    for line in lines:
        click.echo(f"TAMPERED: {line}", err=True)
    return click.exceptions.Exit(EXIT_TAMPERED)


@click.command()
@click.option(
    "--new", "make", is_flag=True, help="Sign a checkpoint of the trail as it is now (the ledger's, --local)."
)
@where_from
def checkpoint(make: bool, server: str | None, local: bool) -> None:
    """Print the latest signed checkpoint (a signed note): the service's when a server is set,
    else the local ledger's. Keep it where the database's owner cannot reach, and check the
    trail against it later with `audit verify --checkpoint`."""
    client = service_or_local(server, local)
    if client is not None:
        if make:
            raise click.UsageError(
                "the service signs its own checkpoints; --new signs with the key of the ledger this "
                "machine reaches: pass --local"
            )
        with client:
            note = client.latest_checkpoint_note()
        if note is None:
            raise InvalidInputError(f"the service at {client.base_url} has signed no checkpoint yet")
        click.echo(note, nl=False)
        return
    from stagegate.ledger.checkpoints import Checkpoints

    with context.ledger(sign_when_due=False) as ledger:
        checkpoints = Checkpoints.from_settings(ledger)
        latest = checkpoints.sign() if make else checkpoints.latest()
    if latest is None:
        raise InvalidInputError(
            "no checkpoint has been signed yet: `stagegate audit checkpoint --new` signs one"
        )
    click.echo(latest.note, nl=False)


def verify_checkpoints(files: tuple[str, ...], key_values: tuple[str, ...]) -> None:
    """``audit verify --checkpoint FILE...``: the trail in the ledger extends each checkpoint."""
    from stagegate.ledger.checkpoint_note import open_checkpoint, split_notes
    from stagegate.ledger.checkpoints import Checkpoints
    from stagegate.ledger.log_check import check_log
    from stagegate.ledger.signed_note import NoteError

    keys = public_keys(key_values)
    with context.ledger(sign_when_due=False) as ledger:
        checkpoints = Checkpoints.from_settings(ledger)
        if not keys:
            keys = checkpoints.public_keys()
            click.echo(
                "note: signatures checked with the public keys the ledger keeps; pass --public-key "
                "with a key you hold to trust no part of the database",
                err=True,
            )
        latest = checkpoints.latest()
        try:
            latest_opened = latest.opened(keys) if latest is not None else None
        except NoteError as exc:
            raise _tampered(
                [f"the ledger's newest checkpoint ({latest.size if latest else 0} events): {exc}"]
            ) from None
        for path in files:
            notes = split_notes(_read(path, "checkpoint file"))
            if not notes:
                raise InvalidInputError(f"{path} holds no checkpoint")
            for note in notes:
                try:
                    signed = open_checkpoint(note, keys, checkpoints.origin)
                except NoteError as exc:
                    raise _tampered([f"checkpoint in {path}: {exc}"]) from None
                verdict = check_log(ledger, signed.checkpoint, latest if latest_opened else None)
                if not verdict.consistent:
                    raise _tampered(
                        [
                            f"against the checkpoint of {verdict.checkpoint_size} events in {path}: {p}"
                            for p in verdict.problems
                        ]
                    )
                extra = "".join(f"; {n}" for n in verdict.notes)
                click.echo(
                    f"consistent: the trail's {verdict.events} events extend the checkpoint of "
                    f"{verdict.checkpoint_size} events signed by {signed.key.name}+{signed.key.id:08x}{extra}"
                )


@click.command()
@click.argument("seq", type=click.IntRange(min=1))
@click.option(
    "--out", "out", type=click.Path(dir_okay=False), default=None, help="Write here, not to stdout."
)
@where_from
def prove(seq: int, out: str | None, server: str | None, local: bool) -> None:
    """Write event SEQ with its inclusion proof and the latest checkpoint, for
    `stagegate audit verify-proof` to check with no database. Reads the ledger itself: with a
    server set, pass --local where the database is reachable."""
    from stagegate.ledger.checkpoints import Checkpoints
    from stagegate.ledger.proof_bundle import check_bundle
    from stagegate.ledger.signed_note import NoteError

    ledger_here(server, local, "audit prove")
    with context.ledger(sign_when_due=False) as ledger:
        checkpoints = Checkpoints.from_settings(ledger)
        bundle = checkpoints.inclusion(seq)
        latest = checkpoints.latest()
    assert latest is not None
    text = bundle.to_json() + "\n"
    try:  # never hand out a proof that does not check: the event or the tree was altered
        check_bundle(text, [latest.verifier()], checkpoints.origin)
    except NoteError as exc:
        raise _tampered([f"event {seq}: {exc}"]) from None
    if out is None:
        click.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    click.echo(f"wrote event {seq} with its proof in the checkpoint of {bundle.tree_size} events to {out}")


@click.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    "key_values",
    multiple=True,
    required=True,
    help="The log's public key (NAME+ID+BASE64, as `stagegate audit key` prints) or a file of them.",
)
def verify_proof(proof_file: str, key_values: tuple[str, ...]) -> None:
    """Check a proof file from `stagegate audit prove` with no database: exit 0 if the event is
    in a checkpoint one of the keys signed, 4 if not."""
    from stagegate.ledger.proof_bundle import check_bundle
    from stagegate.ledger.signed_note import NoteError

    keys = public_keys(key_values)
    origin = load_settings().checkpoint_origin
    try:
        checked = check_bundle(_read(proof_file, "proof file"), keys, origin)
    except NoteError as exc:
        raise _tampered([str(exc)]) from None
    e, cp = checked.event, checked.checkpoint
    click.echo(
        f"verified: event {checked.seq} ({e.get('action')} by {e.get('actor')} at {e.get('time')}) is in the "
        f"checkpoint of {cp.checkpoint.size} events of {cp.checkpoint.origin}, signed by "
        f"{cp.key.name}+{cp.key.id:08x} at {cp.checkpoint.time:%Y-%m-%dT%H:%M:%SZ}"
    )


@click.command()
@click.option(
    "--new",
    "new_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Make a new signing key in this file (mode 0600; never overwritten) and print its public key.",
)
@where_from
def key(new_file: str | None, server: str | None, local: bool) -> None:
    """Print the public keys auditors check checkpoints with: the signing key's, then every key
    that signed a checkpoint in this ledger (a rotated key stays listed). Reads the ledger
    itself: with a server set, pass --local where the database is reachable (`audit checkpoint`
    shows the service's latest note, which names its key)."""
    from stagegate.ledger.checkpoints import Checkpoints
    from stagegate.ledger.signed_note import SignerKey
    from stagegate.ledger.signing_key import NoSigningKeyError

    settings = load_settings()
    if new_file is None:
        ledger_here(server, local, "audit key")
    else:
        made = SignerKey.generate(settings.checkpoint_origin)
        fd = os.open(new_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(made.encode() + "\n")
        click.echo(made.verifier().encode())
        return
    with context.ledger(sign_when_due=False) as ledger:
        checkpoints = Checkpoints.from_settings(ledger, settings)
        seen = []
        with contextlib.suppress(NoSigningKeyError):  # a host that signs nothing lists the rest
            seen.append(checkpoints.signer_public_key().encode())
        seen += [k.encode() for k in checkpoints.public_keys() if k.encode() not in seen]
    for line in seen:
        click.echo(line)
