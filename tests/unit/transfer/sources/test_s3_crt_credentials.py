"""The CRT's credentials delegate: one object while boto3's keys stay the same, a new one
once they rotate (the CRT asks at every request it signs)."""

from dataclasses import dataclass
from typing import Any

import pytest
from awscrt.auth import AwsCredentials

from stagegate.transfer.sources import s3_crt
from stagegate.transfer.sources.s3_crt import _delegate


@dataclass
class Frozen:
    access_key: str
    secret_key: str
    token: str | None


class Credentials:
    """boto3's refreshable credentials, reduced to what the delegate reads."""

    def __init__(self) -> None:
        self.now = Frozen("AKIA1", "secret1", None)

    def get_frozen_credentials(self) -> Frozen:
        return self.now


def test_the_same_keys_are_made_once_and_rotated_ones_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, ...]] = []

    def counting(*keys: Any) -> AwsCredentials:
        made.append(keys)
        return AwsCredentials(*keys)

    monkeypatch.setattr(s3_crt, "AwsCredentials", counting)
    boto = Credentials()
    provider = _delegate(lambda: boto)
    for _ in range(3):
        assert provider.get_credentials().result(timeout=10).access_key_id == "AKIA1"
    assert made == [("AKIA1", "secret1", None)]
    boto.now = Frozen("AKIA2", "secret2", "token2")
    rotated = provider.get_credentials().result(timeout=10)
    assert made[1:] == [("AKIA2", "secret2", "token2")]
    assert (rotated.access_key_id, rotated.secret_access_key, rotated.session_token) == (
        "AKIA2",
        "secret2",
        "token2",
    )
