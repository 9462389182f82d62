import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.ledger.redact import REDACTED, looks_secret, redact_details, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/prefix/", "s3://bucket/prefix/"),
        ("/nvme/datasets/imagenet", "/nvme/datasets/imagenet"),
        ("file:///nvme/x", "file:///nvme/x"),
        ("https://user:hunter2@minio.local:9000/b/k", "https://minio.local:9000/b/k"),
        ("https://ghp_tokenonly@github.com/org/repo", "https://github.com/org/repo"),
        ("postgresql://admin:pw@db:5432/ledger", "postgresql://db:5432/ledger"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2024"
            "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=ab12",
            "https://b.s3.amazonaws.com/k",
        ),
        (
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=zz",
            "https://b.s3.amazonaws.com/k",  # after a secret parameter nothing is kept
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=abc%3D",
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r",
        ),
        (
            "https://storage.googleapis.com/b/o?X-Goog-Signature=ff&X-Goog-Credential=x",
            "https://storage.googleapis.com/b/o",
        ),
        ("https://h/p?versionId=3&token=t&api_key=k&access_token=a&password=p", "https://h/p?versionId=3"),
        ("https://h/p#access_token=abc&state=1", "https://h/p"),
        ("https://h/p#state=1&access_token=abc", "https://h/p#state=1"),
        ("s3://b/key%20with?odd=chars&more", "s3://b/key%20with?odd=chars&more"),
        ("s3://b/a#b", "s3://b/a#b"),
        ("user:pw@host:/data/set", "host:/data/set"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "name",
    ["password", "PASSWD", "pwd", "client_secret", "SessionToken", "X-Amz-Security-Token", "sig",
     "Signature", "x-amz-credential", "Authorization", "apiKey", "api-key", "AWSAccessKeyId",
     "aws_secret_access_key", "private_key", "sse_c", "SSECustomerKey", "cookie"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["key", "keys", "bucket", "versionId", "node", "signed", "design", "author"])
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def test_redact_details_at_any_depth() -> None:
    details = {
        "key": "train/000.tar",
        "password": "x",
        "nested": {"ClientSecret": "y", "urls": ["https://u:p@h/a?sig=1", 3], "ok": True},
    }
    assert redact_details(details) == {
        "key": "train/000.tar",
        "password": REDACTED,
        "nested": {"ClientSecret": REDACTED, "urls": ["https://h/a", 3], "ok": True},
    }
    assert details["password"] == "x"  # the caller's mapping is left alone


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@given(user=_word, password=_word, signature=_word, path=_word)
def test_no_credential_survives(user: str, password: str, signature: str, path: str) -> None:
    url = f"https://{user}:{password}@host.example/{path}?versionId=1&X-Amz-Signature={signature}&a=b"
    assert redact_url(url) == f"https://host.example/{path}?versionId=1"


def test_redact_text_cleans_urls_and_scp_userinfo_inside_messages() -> None:
    from stagegate.ledger.redact import redact_text

    messages = {
        "nothing under s3://b/ds?X-Amz-Credential=AKIA&X-Amz-Signature=hunter2": "s3://b/ds?",
        "file URL with a remote host: 'file://alice:hunter2@localhost/x'": "file://localhost/x",
        "no such file or directory: alice:hunter2@nas:missing": "nas:missing",
    }
    for message, readable in messages.items():
        cleaned = redact_text(message)
        assert "hunter2" not in cleaned
        assert "AKIA" not in cleaned
        assert readable in cleaned  # what failed stays readable
    # Several in one message: everything up to the last "@" after a scheme goes (over-redaction).
    assert "hunter2" not in redact_text("; ".join(messages))
    assert redact_text("plain words, a/path and key=value") == "plain words, a/path and key=value"
