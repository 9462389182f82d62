"""stagegate.ledger.signing_key: where the checkpoint key comes from. Embedded mode makes one
under $STAGEGATE_HOME on first use (0600) and keeps using it; a service never makes one; a key
file others may read is refused; a key given as a secret is never quoted back."""

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from stagegate.errors import InvalidInputError
from stagegate.ledger.signed_note import SignerKey
from stagegate.ledger.signing_key import KEY_FILE, NoSigningKeyError, load_signer
from stagegate.settings import PREFIX, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)


def test_embedded_mode_makes_one_private_key_on_first_use_and_keeps_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, checkpoint_origin="example.org/audit")
    first = load_signer(settings, embedded=True)
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert first.name == "example.org/audit"
    assert load_signer(settings, embedded=True).encode() == first.encode()  # not a new one each time


def test_a_service_never_makes_a_key(tmp_path: Path) -> None:
    with pytest.raises(NoSigningKeyError, match="a service never makes one"):
        load_signer(Settings(home=tmp_path), embedded=False)
    assert not (tmp_path / KEY_FILE).exists()


def test_a_configured_key_file_is_used_and_must_be_private(tmp_path: Path) -> None:
    key = SignerKey.generate("example.org/audit")
    path = tmp_path / "signing.key"
    path.write_text(key.encode() + "\n")
    path.chmod(0o600)
    settings = Settings(home=tmp_path / "home", checkpoint_key_file=path)
    assert load_signer(settings, embedded=False).encode() == key.encode()
    assert not (tmp_path / "home").exists()  # a configured key: none is made
    path.chmod(0o640)
    with pytest.raises(InvalidInputError, match=r"may be read by others \(mode 640\): chmod 600 it"):
        load_signer(settings, embedded=True)


def test_a_key_file_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    real.write_text(SignerKey.generate("example.org/audit").encode() + "\n")
    real.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(InvalidInputError, match="cannot open"):
        load_signer(Settings(checkpoint_key_file=link), embedded=False)


def test_a_key_given_as_a_secret_is_used_and_never_quoted(tmp_path: Path) -> None:
    key = SignerKey.generate("example.org/audit")
    settings = Settings(home=tmp_path, checkpoint_key=SecretStr(key.encode()))
    assert load_signer(settings, embedded=False).encode() == key.encode()
    broken = key.encode()[:-6] + "pl4nt!"
    with pytest.raises(InvalidInputError) as refused:
        load_signer(Settings(home=tmp_path, checkpoint_key=SecretStr(broken)), embedded=False)
    assert "STAGEGATE_CHECKPOINT_KEY" in str(refused.value)
    assert "pl4nt" not in str(refused.value) and key.encode()[20:40] not in str(refused.value)
