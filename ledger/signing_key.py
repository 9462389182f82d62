"""Where the checkpoint signing key comes from: ``STAGEGATE_CHECKPOINT_KEY`` (the key itself, as
a Kubernetes Secret exposes one), ``STAGEGATE_CHECKPOINT_KEY_FILE``, or, in embedded mode only
(a SQLite ledger), ``$STAGEGATE_HOME/checkpoint.key``, made on first use.

A service with a PostgreSQL ledger never makes a key of its own: every node would make a
different one, each could sign, and none would be the key an auditor was given.
"""

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.ledger.signed_note import SignerKey, parse_signer
from stagegate.settings import Settings, env_name

KEY_FILE = "checkpoint.key"
KEY_ENV = env_name("checkpoint_key")
KEY_FILE_ENV = env_name("checkpoint_key_file")


class NoSigningKeyError(InvalidInputError):
    """Checkpoints cannot be signed: no key is configured and this is not embedded mode."""


def _read_key_file(path: Path) -> SignerKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidInputError(f"{KEY_FILE_ENV}: cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd) as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInputError(f"the checkpoint key {path} is not a regular file")
        if mode & 0o077:
            # As ssh does: a key others may read is a key others may have copied.
            raise InvalidInputError(
                f"the checkpoint key {path} may be read by others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
            )
        text = f.read(4096)
    try:
        return parse_signer(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"the checkpoint key {path}: {exc}") from None


def _make_key_file(path: Path, name: str) -> None:
    """Write a new key to ``path`` unless one is there: written whole under a temporary name,
    then linked, so a racing process either wins or reads the winner's complete key."""
    key = SignerKey.generate(name)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-key-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.encode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_signer(settings: Settings, embedded: bool) -> SignerKey:
    """The key that signs checkpoints; :class:`NoSigningKeyError` if none is configured and
    ``embedded`` is false."""
    if settings.checkpoint_key is not None:
        try:
            return parse_signer(settings.checkpoint_key.get_secret_value())
        except InvalidInputError as exc:
            raise InvalidInputError(f"{KEY_ENV}: {exc}") from None  # the message never quotes the key
    if settings.checkpoint_key_file is not None:
        return _read_key_file(settings.checkpoint_key_file.expanduser())
    if not embedded:
        raise NoSigningKeyError(
            f"no checkpoint signing key: set {KEY_FILE_ENV} (or {KEY_ENV}) to a key made with "
            "`stagegate audit key --new NAME`; a service never makes one of its own"
        )
    home = settings.home.expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / KEY_FILE
    if not path.exists():
        _make_key_file(path, settings.checkpoint_origin)
    return _read_key_file(path)
