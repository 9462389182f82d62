"""The one credential detector and the redaction behind it, tried with secrets drawn from the
whole URL alphabet: whatever a secret holds, it is detected, refused without being repeated,
and never survives redaction."""

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.urls import REDACTED, has_credentials, redact_text, redact_url, refuse_credentials

# RFC 3986's unreserved and reserved characters, "%" and a space: everything a secret might hold.
URL_ALPHABET = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%" + " "
secrets = st.text(alphabet=URL_ALPHABET, min_size=1, max_size=40)
access_keys = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=20)
schemes = st.sampled_from(["s3", "https", "gs", "file", "sftp"])


def _refusal(url: str) -> str:
    with pytest.raises(InvalidInputError) as caught:
        refuse_credentials(url, "source URL")
    return str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAX:abc/def@bucket/key",  # the secret holds "/": urlsplit's netloc ends there
        "s3://AKIAX:a+b%2Fc@bucket/key",
        "s3://AKIAX:has space@bucket/key",
        "s3://AKIAX:q?x#y@bucket/key",
        "https://ghp_tokenonly@github.com/org/repo",
        "s3://bucket/users/bob@example.com/",  # cannot be told from the above: refused too
        "https://h/p?X-Amz-Signature=ab12&X-Amz-Credential=AKIA",
        "https://h/p?versionId=3&token=t",
        "https://h/p#access_token=abc",
        "alice:hunter2@nas:/data",
        "alice:hun/ter2@nas:/data",
        "alice@nas:/data",
    ],
)
def test_credentials_are_detected(url: str) -> None:
    assert has_credentials(url)
    with pytest.raises(InvalidInputError):
        refuse_credentials(url, "source URL")


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/prefix/",
        "s3://b/key%20with?odd=chars&more",
        "file:///nvme/x",
        "/nvme/datasets/imagenet",
        "/data/bob@example.com/ds",  # a plain absolute path may hold "@"
        "relative/dir",
        "memory://ds",
    ],
)
def test_plain_urls_pass(url: str) -> None:
    assert not has_credentials(url)
    refuse_credentials(url, "source URL")


def test_refusal_says_what_and_how_without_the_url() -> None:
    message = _refusal("s3://AKIAX:qwe/rty@zbkt/zkey")
    assert "source URL" in message and "@" in message and "AWS_" in message
    for part in ("AKIAX", "qwe", "rty", "zbkt", "zkey"):
        assert part not in message
    message = _refusal("https://h/p?X-Amz-Signature=ab12")
    assert "presigned" in message and "ab12" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://AKIAX:abc/def@bucket/key", "s3://bucket/key"),
        ("s3://AKIAX:abc/def@ghi/jkl@bucket/key", "s3://bucket/key"),
        ("s3://AKIAX:sp ace@bucket/key", "s3://bucket/key"),
        ("s3://AKIAX:a?token=b@bucket/key", f"s3://{REDACTED}"),
        ("https://h/p?X-Amz-Signature=ab@cd&versionId=1", f"https://{REDACTED}"),
        ("https://h/p?versionId=1&token=ab&cd#ef", "https://h/p?versionId=1"),
        ("alice:hun/ter2@nas:/data", "nas:/data"),
    ],
)
def test_redact_url_drops_everything_up_to_the_last_at(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(scheme=schemes, access_key=access_keys, secret=secrets)
def test_userinfo_secret_never_survives(scheme: str, access_key: str, secret: str) -> None:
    url = f"{scheme}://{access_key}:{secret}@bucket/key"
    assert has_credentials(url)
    assert redact_url(url) in (f"{scheme}://bucket/key", f"{scheme}://{REDACTED}")
    message = f"cannot read '{url}': Access Denied"
    assert redact_text(message) in (
        f"cannot read '{scheme}://bucket/key': Access Denied",
        f"cannot read '{scheme}://{REDACTED}",  # the "@" may end a secret value: the line goes
    )
    # The refusal is the same words whatever the URL held: it cannot quote the secret.
    assert _refusal(url) == _refusal("s3://x@y")


@given(secret=secrets)
def test_token_alone_as_userinfo_never_survives(secret: str) -> None:
    url = f"https://{secret}@github.com/org/repo"
    assert has_credentials(url)
    assert redact_url(url) in ("https://github.com/org/repo", f"https://{REDACTED}")


SECRET_PARAMS = ["X-Amz-Signature", "x-goog-signature", "token", "sig", "password"]


@given(name=st.sampled_from(SECRET_PARAMS), value=secrets)
def test_secret_parameter_never_survives(name: str, value: str) -> None:
    url = f"https://host.example/p?versionId=1&{name}={value}"
    assert has_credentials(url)
    assert redact_url(url) in ("https://host.example/p?versionId=1", f"https://{REDACTED}")
    assert _refusal(url) in (_refusal("https://h/p?token=x"), _refusal("s3://x@y"))
    assert redact_text(f"GET {url} failed") in (
        f"GET https://host.example/p?versionId=1&{REDACTED}",  # a value may hold spaces
        f"GET https://{REDACTED}",
    )


@given(user=access_keys, secret=st.text(alphabet=URL_ALPHABET.replace(" ", ""), min_size=1, max_size=40))
def test_scp_style_password_never_survives(user: str, secret: str) -> None:
    plain = f"{user}:{secret}@nas:/data"
    assert has_credentials(plain)
    assert redact_url(plain) == "nas:/data"
    assert redact_text(f"no such file: {plain}") == "no such file: nas:/data"


@given(secret=secrets)
def test_text_with_several_urls_keeps_none_of_the_secret(secret: str) -> None:
    assume("@" not in secret)  # an "@" in the secret is covered above; here: where the URL ends
    message = f"copy s3://b/a to s3://AK:{secret}@bucket/key then"
    cleaned = redact_text(message)
    assert cleaned.endswith("s3://bucket/key then") or cleaned.endswith(REDACTED)
    assert f":{secret}@" not in cleaned


def test_redact_text_leaves_plain_words_alone() -> None:
    text = "plain words, a/path, key=value, s3://bucket/prefix/ and /data/x"
    assert redact_text(text) == text


def test_a_secret_parameter_in_text_takes_its_line_not_the_next() -> None:
    text = "GET https://h/p?a=1&token=ab cd failed\nretrying s3://bucket/key"
    assert redact_text(text) == f"GET https://h/p?a=1&{REDACTED}\nretrying s3://bucket/key"
