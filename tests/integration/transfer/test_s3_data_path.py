"""The S3 data path against a real S3 server on loopback: small objects through the CRT's
client (transfer.sources.s3_crt), ranged parts through boto3. A byte flipped in flight is
caught and the object read again; If-Match holds; the embedded and the service steps both
read small objects through the CRT, never through boto3's GET.

Bytes are corrupted by a proxy between the client and moto that flips one byte of one
object's response body, once: the stored object, its ETag and checksum stay intact, as on a
network that damaged a packet the TCP checksum missed.
"""

import collections
import http.client
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from integration.helpers import MiB, assert_staged, data_files, payload, put_objects, small_config, temp_files
from stagegate.transfer import copy_batch, open_source, plan_dataset, stage
from stagegate.transfer.errors import ChecksumMismatchError, SourceChangedError
from stagegate.transfer.sources import s3 as s3_source
from stagegate.transfer.sources import s3_body, s3_crt

pytestmark = pytest.mark.integration

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FlippingProxy:
    """An HTTP proxy to ``upstream`` that flips one byte of the body of the first ``flips``
    GET responses whose path ends with ``victim`` (with ``cut``, sends only the first half of
    the body, under the whole one's Content-Length, and hangs up); records every GET's path
    and User-Agent."""

    def __init__(self, upstream: str, victim: str, flips: int = 1, cut: bool = False) -> None:
        self.victim, self.flips, self.cut = victim, flips, cut
        self.flipped = 0
        self.gets: list[tuple[str, str]] = []
        self.on_get: Any = None  # called with each GET's path, client port and own port, as served
        self._lock = threading.Lock()
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                resp = upstream_conn.getresponse()
                data = bytearray(resp.read())
                if self.command == "GET":
                    if proxy.on_get is not None:
                        proxy.on_get(self.path, self.client_address[1], self.server.server_address[1])
                    with proxy._lock:
                        proxy.gets.append((self.path, self.headers.get("User-Agent", "")))
                        flip = (
                            urlsplit(self.path).path.endswith(proxy.victim)
                            and resp.status < 300
                            and data
                            and proxy.flipped < proxy.flips
                        )
                        if flip:
                            proxy.flipped += 1
                    if flip and not proxy.cut:
                        data[len(data) // 2] ^= 0x01
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET" and flip and proxy.cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True  # the client sees the body end early
                elif self.command != "HEAD":
                    self.wfile.write(data)
                upstream_conn.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FlippingProxy":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def through(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start a flipping proxy for a victim key and point every client made after at it."""
    proxies: list[FlippingProxy] = []

    def start(victim: str, flips: int = 1, cut: bool = False) -> FlippingProxy:
        proxy = FlippingProxy(s3_endpoint, victim, flips, cut).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        return proxy

    yield start
    for proxy in proxies:
        proxy.__exit__()


def _crt_gets(proxy: FlippingProxy, suffix: str) -> list[str]:
    return [ua for path, ua in proxy.gets if urlsplit(path).path.endswith(suffix)]


@pytest.mark.parametrize("size", [100_000, 3 * MiB + 5], ids=["whole", "in-parts"])
def test_a_byte_flipped_in_flight_is_caught_and_the_object_read_again(
    s3_client, bucket, tmp_path, caplog, through, size
):
    files = {"a.bin": payload("a", 1000), "victim.bin": payload("victim", size), "z.bin": b"z"}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    proxy = through("victim.bin")

    with caplog.at_level(logging.WARNING, logger="stagegate.transfer.engine"):
        result = stage(open_source(f"s3://{bucket}/ds"), tmp_path / "dest", small_config(max_attempts=3))

    assert proxy.flipped == 1
    assert result.files == len(files)
    assert_staged(tmp_path / "dest", files)
    retries = [r.getMessage() for r in caplog.records if "victim.bin" in r.getMessage()]
    assert len(retries) == 1 and "retrying" in retries[0], retries
    # Every GET of the victim went through its data path: the CRT (its User-Agent names it)
    # for a small object read whole, boto3 for ranged parts.
    agents = _crt_gets(proxy, "victim.bin")
    through_crt = ["botocore" not in ua.lower() and "crt" in ua.lower() for ua in agents]
    assert len(agents) >= 2, agents
    assert all(through_crt) if size < MiB else not any(through_crt), agents


def test_a_byte_flipped_on_every_read_fails_after_the_last_attempt(s3_client, bucket, tmp_path, through):
    files = {"victim.bin": payload("v", 5000), "ok.bin": payload("ok", 10)}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    proxy = through("victim.bin", flips=99)

    with pytest.raises(ChecksumMismatchError, match=r"victim\.bin"):
        stage(open_source(f"s3://{bucket}/ds"), tmp_path / "dest", small_config(max_attempts=3))

    assert proxy.flipped == 3
    assert "victim.bin" not in data_files(tmp_path / "dest")
    assert temp_files(tmp_path / "dest") == []


@pytest.mark.parametrize("size", [100_000, 3 * MiB + 5], ids=["whole", "in-parts"])
def test_a_boto3_body_cut_short_is_caught_and_the_object_read_again(
    s3_client, bucket, tmp_path, caplog, through, size
):
    files = {"a.bin": payload("a", 1000), "victim.bin": payload("victim", size)}
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    proxy = through("victim.bin", cut=True)
    source = s3_source.S3Source(f"s3://{bucket}/ds", data_path="boto3")

    with caplog.at_level(logging.WARNING, logger="stagegate.transfer.engine"):
        result = stage(source, tmp_path / "dest", small_config(max_attempts=3))

    assert proxy.flipped == 1
    assert result.files == len(files)
    assert_staged(tmp_path / "dest", files)
    retries = [r.getMessage() for r in caplog.records if "victim.bin" in r.getMessage()]
    assert len(retries) == 1 and "retrying" in retries[0], retries


def test_boto3_bodies_are_read_into_the_engines_buffer_and_give_their_connection_back(s3_client, bucket):
    data = payload("direct", 3 * MiB + 7)
    put_objects(s3_client, bucket, {"ds/d.bin": data})
    source = s3_source.S3Source(f"s3://{bucket}/ds", data_path="boto3")
    (obj,) = list(source.list())
    buffer = memoryview(bytearray(1 << 20))
    for offset, length in ((0, None), (MiB, MiB + 3)):
        reader = source.open(obj, offset, length)
        assert hasattr(reader, "readinto")
        got = bytearray()
        while n := reader.readinto(buffer):
            got += buffer[:n]
        reader.close()
        assert bytes(got) == data[offset : None if length is None else offset + length]
    pools = source._client._endpoint.http_session._manager.pools  # urllib3's, one per endpoint
    (endpoint,) = pools.keys()
    pool = pools[endpoint]
    assert pool.num_connections == 1  # the second GET reused the first's connection


def test_a_body_botocore_validates_is_left_to_botocore(s3_client, bucket):
    put_objects(s3_client, bucket, {"ds/c.bin": payload("c", 5000)})
    body = s3_client.get_object(Bucket=bucket, Key="ds/c.bin", ChecksumMode="ENABLED")["Body"]
    try:
        assert type(body).__name__ == "StreamingChecksumBody"  # botocore checks the CRC as it reads
        assert s3_body.direct_reader(body, "c.bin") is None
    finally:
        body.close()


def test_an_object_rewritten_after_listing_is_refused_by_if_match(s3_client, bucket, tmp_path):
    put_objects(s3_client, bucket, {"ds/f.bin": payload("old", 4000)})
    source = open_source(f"s3://{bucket}/ds")
    (obj,) = list(source.list())
    put_objects(s3_client, bucket, {"ds/f.bin": payload("new", 4000)})  # same size, new ETag

    with pytest.raises(SourceChangedError, match="changed since it was listed"):
        source.open(obj)
    with pytest.raises(SourceChangedError, match="changed since it was listed"):
        source.open(obj, 1000, 1000)  # a ranged read too


def test_a_body_holds_a_bounded_window_however_slowly_it_is_read(s3_client, bucket):
    data = payload("slow", 24 * MiB + 3)  # four CRT parts
    put_objects(s3_client, bucket, {"ds/big.bin": data})
    source = s3_source.S3Source(f"s3://{bucket}/ds", data_path="crt")
    (obj,) = list(source.list())
    reader = source.open(obj)
    body = reader._body  # the CRT body under the engine's reader
    assert isinstance(body, s3_crt.CrtBody)
    got = bytearray(reader.read(1 << 16))
    threading.Event().wait(1.0)  # the CRT has had time to fetch everything, if it were let
    assert body._buffered <= s3_crt.WINDOW + s3_crt.PART_SIZE
    while chunk := reader.read(1 << 20):
        got += chunk
    reader.close()
    assert bytes(got) == data


@pytest.fixture
def boto3_gets(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """GETs sent through boto3 (by any client the code under test makes) and through the CRT."""
    sent: collections.Counter[str] = collections.Counter()
    make_client = s3_source.make_client
    crt_get = s3_crt.CrtGetter.get

    def counting(max_connections: int) -> Any:
        client = make_client(max_connections)
        client.meta.events.register("before-call.s3.GetObject", lambda **_: sent.update(["boto3"]))
        return client

    def counting_get(self: s3_crt.CrtGetter, *args: Any, **kwargs: Any) -> Any:
        sent.update(["crt"])
        return crt_get(self, *args, **kwargs)

    monkeypatch.setattr(s3_source, "make_client", counting)
    monkeypatch.setattr(s3_crt.CrtGetter, "get", counting_get)
    return sent


def test_embedded_and_service_steps_both_read_through_the_crt(s3_client, bucket, tmp_path, boto3_gets):
    files = {f"f/{i:02d}.bin": payload(f"f{i}", 2000 + i) for i in range(12)}
    files["big.bin"] = payload("big", 3 * MiB + 1)  # ranged parts
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in files.items()})
    url = f"s3://{bucket}/ds"

    stage(open_source(url), tmp_path / "embedded", small_config())
    assert_staged(tmp_path / "embedded", files)
    small = len(files) - 1
    ranged = 4  # big.bin in 1 MiB parts, through boto3
    assert dict(boto3_gets) == {"crt": small, "boto3": ranged}, dict(boto3_gets)

    boto3_gets.clear()
    plan = plan_dataset(open_source(url), tmp_path / "plan.jsonl")
    copy_batch(open_source(url), tmp_path / "service", 0, list(plan.entries()), small_config())
    assert data_files(tmp_path / "service") == files
    assert dict(boto3_gets) == {"crt": small, "boto3": ranged}, dict(boto3_gets)
