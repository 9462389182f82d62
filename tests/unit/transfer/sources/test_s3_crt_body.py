"""The queue between the CRT's delivering thread and the engine's reads (s3_crt.CrtBody),
driven by calling its callbacks as the CRT would; and the headers' reading."""

import threading

import pytest

from stagegate.transfer.errors import SourceChangedError, SourceReadError, TransferError
from stagegate.transfer.sources.s3_crt import CrtBody, response_fields


class FakeError(Exception):
    name = "AWS_ERROR_S3_INVALID_RESPONSE_STATUS"


def test_reads_hand_on_the_bytes_in_order_whatever_the_read_size() -> None:
    body = CrtBody("k", window=100)
    body._on_headers(200, [("ETag", '"e"'), ("x-amz-tagging-count", "2")])
    body._on_body(b"abcdef", 0)
    body._on_body(b"gh", 6)
    body._on_done(None, 200)
    assert body.wait_headers()["x-amz-tagging-count"] == "2"
    got = [body.read(4), body.read(4), body.read(4), body.read(4)]
    assert got == [b"abcd", b"ef", b"gh", b""]


def test_the_delivering_thread_waits_while_the_window_is_full() -> None:
    body = CrtBody("k", window=4)
    body._on_headers(200, [])
    body._on_body(b"1234", 0)  # fills the window
    delivered = threading.Event()

    def deliver() -> None:
        body._on_body(b"5678", 4)
        delivered.set()

    thread = threading.Thread(target=deliver)
    thread.start()
    assert not delivered.wait(0.2), "delivered past a full window"
    assert body.read(10) == b"1234"
    assert delivered.wait(5)
    thread.join()
    body._on_done(None, 200)
    assert body.read(10) == b"5678"
    assert body.read(10) == b""


def test_close_releases_a_waiting_delivery_and_drops_what_was_queued() -> None:
    body = CrtBody("k", window=1)
    body._on_headers(200, [])
    body._on_body(b"x", 0)
    thread = threading.Thread(target=body._on_body, args=(b"y", 1))
    thread.start()
    body.close()  # no request: nothing to cancel
    thread.join(5)
    assert not thread.is_alive()
    assert body._buffered == 1 and not body._chunks


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (412, SourceChangedError, "changed since it was listed"),
        (404, SourceChangedError, "deleted since it was listed"),
        (403, TransferError, "HTTP 403"),
        (503, SourceReadError, "HTTP 503"),
    ],
)
def test_a_failed_get_raises_what_the_engine_acts_on(status: int, error: type, message: str) -> None:
    body = CrtBody("data/f.bin")
    body._on_headers(status, [])
    body._on_done(FakeError(), status)
    with pytest.raises(error, match=message) as raised:
        body.wait_headers()
    assert "data/f.bin" in str(raised.value)
    assert type(raised.value) is error  # 403 must not be retried as a read failure


def test_a_failure_mid_body_is_a_read_failure_after_the_bytes_before_it() -> None:
    body = CrtBody("k")
    body._on_headers(200, [])
    body._on_body(b"ab", 0)
    body._on_done(FakeError(), 200)
    assert body.read(10) == b"ab"
    with pytest.raises(SourceReadError):
        body.read(10)


def test_headers_read_as_boto3_names_them() -> None:
    fields = response_fields(
        {
            "x-amz-checksum-crc32": "O0HJ5g==",
            "x-amz-checksum-type": "FULL_OBJECT",
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-tagging-count": "3",
            "etag": '"e"',
        }
    )
    assert fields == {
        "ChecksumCRC32": "O0HJ5g==",
        "ChecksumType": "FULL_OBJECT",
        "ServerSideEncryption": "aws:kms",
        "TagCount": 3,
    }
    assert response_fields({"x-amz-tagging-count": "many"})["TagCount"] == 1  # unreadable: has tags
